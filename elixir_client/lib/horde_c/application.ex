defmodule HordeC.Application do
  @moduledoc false
  # The :horde_c application: one tiny supervisor owning the table of per-name client state
  # (`HordeC.Clients`; client processes come and go, the table outlives them) and the local
  # registry of objects started with `hordec: :local` (`HordeC.Daemon.join/2`), which the daemon
  # keeps in step with the daemons it discovers, across restarts of either.

  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link(
      [HordeC.Clients, {Registry, keys: :duplicate, name: HordeC.Daemon.Joins}],
      strategy: :one_for_one,
      name: HordeC.Supervisor
    )
  end
end
