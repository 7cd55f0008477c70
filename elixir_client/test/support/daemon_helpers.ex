defmodule HordeC.Test.DaemonHelpers do
  @moduledoc """
  Runs an application-like supervision tree on a peer (HordeC.Daemon first, then objects using
  `hordec: :local`), owned by a process that outlives the `:erpc` call starting it.
  """

  @doc "Starts `children` under a `:rest_for_one` supervisor named `HordeC.Test.AppSup`."
  def start_tree(children, timeout \\ 30_000) do
    {:ok, _} = Application.ensure_all_started(:horde_c)
    # The peer's log goes to the runner's terminal: keep it to what matters.
    Logger.configure(level: :warning)

    HordeC.Test.PeerHelpers.start_held(
      fn ->
        Supervisor.start_link(children, strategy: :rest_for_one, name: HordeC.Test.AppSup)
      end,
      timeout
    )
  end

  @doc "Registers a fresh process under `key` in `registry`; returns its pid."
  def register_new(registry, key) do
    {:ok, pid} = Agent.start(fn -> key end, name: {:via, HordeC.Registry, {registry, key}})
    pid
  end
end
