defmodule HordeC.Test.SupervisorFaultHelpers do
  @moduledoc """
  Code the `HordeC.DynamicSupervisor` failover test runs on peer nodes, and its BEAM child
  (`HordeC.Test.FaultChild`). Children run on any BEAM member, so these modules live in
  `test/support` (compiled to ebin, loadable by peers).

  How a test counts live copies of a child without trusting the supervisor: every BEAM child
  joins the `:pg` group `{:child, key}` of a scope started on every BEAM node (`start_pg/1`), so
  `:pg.get_members(scope, {:child, key})` on a node connected to all members lists every live copy
  (a copy on a node that died leaves the group with the node); and it sends
  `{:fault_started, key, pid, node}` to a log process on the test runner when it starts, so
  every start ever made is counted on a node that survives the faults.
  """

  @doc """
  Starts the `:pg` scope `scope` on this node in a process that outlives the caller (`:pg.start/1`
  is not linked). Returns `:ok`; an already running scope is fine.
  """
  @spec start_pg(atom()) :: :ok
  def start_pg(scope) do
    case :pg.start(scope) do
      {:ok, _} -> :ok
      {:error, {:already_started, _}} -> :ok
    end
  end

  @doc "The live copies of child `key` that this node's `:pg` scope knows of."
  @spec copies(atom(), term()) :: [pid()]
  def copies(scope, key), do: :pg.get_members(scope, {:child, key})

  @doc """
  The child spec of a BEAM test child (`HordeC.Test.FaultChild`) with key `key`, restart type
  `restart`, joining `scope` and logging its starts to `log` (`{name, node}`).
  """
  @spec beam_spec(term(), atom(), atom(), {atom(), node()}) :: Supervisor.child_spec()
  def beam_spec(key, restart, scope, log) do
    Supervisor.child_spec({HordeC.Test.FaultChild, %{key: key, scope: scope, log: log}},
      restart: restart
    )
  end

  @doc """
  The child spec of a C test child: a built-in `"echo"` worker whose init argument is
  `{:fault, key}` (it answers `:get_arg` with it).
  """
  @spec c_spec(term(), atom()) :: {module(), keyword()}
  def c_spec(key, restart),
    do: {HordeC.CWorker, type: "echo", arg: {:fault, key}, restart: restart}

  @doc """
  The key of a running test child, whatever its kind (a BEAM child's `:key` call, a C echo
  worker's `:get_arg`).
  """
  @spec key_of(pid(), timeout()) :: term()
  def key_of(pid, timeout \\ 5_000) do
    case GenServer.call(pid, :get_arg, timeout) do
      {:fault, key} -> key
    end
  end
end

defmodule HordeC.Test.FaultChild do
  @moduledoc """
  The BEAM child of the failover test: joins `:pg` group `{:child, key}` in `scope` and sends
  `{:fault_started, key, pid, node}` to `log` from its init. Calls: `:get_arg` (replies
  `{:fault, key}`, as the C echo worker does for its argument), `{:stop, reason}`.
  """
  use GenServer

  def start_link(arg) when is_map(arg), do: GenServer.start_link(__MODULE__, arg)

  @impl true
  def init(%{key: key, scope: scope, log: log} = arg) do
    :ok = :pg.join(scope, {:child, key}, self())
    send(log, {:fault_started, key, self(), node()})
    {:ok, arg}
  end

  @impl true
  def handle_call(:get_arg, _from, arg), do: {:reply, {:fault, arg.key}, arg}
  def handle_call({:stop, reason}, _from, arg), do: {:stop, reason, :ok, arg}

  @impl true
  def handle_info(_msg, arg), do: {:noreply, arg}
end
