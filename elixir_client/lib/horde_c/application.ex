defmodule HordeC.Application do
  @moduledoc false
  # The :horde_c application: one tiny supervisor whose only child owns the table of per-name
  # client state (`HordeC.Clients`). Client processes come and go; the table outlives them.

  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([HordeC.Clients],
      strategy: :one_for_one,
      name: HordeC.Supervisor
    )
  end
end
