defmodule HordeC.Test.SupervisorPartitionHelpers do
  @moduledoc """
  Code the `HordeC.DynamicSupervisor` partition tests run on peer nodes (through `peer_call/5`),
  and their BEAM child (`HordeC.Test.PartChild`). Children run on any BEAM member, so these
  modules live in `test/support` (compiled to ebin, loadable by peers).

  How the tests see copies without trusting the supervisor: a BEAM child stores its key in its
  process dictionary, so `local_copies/0` on a node lists the live copies there (nothing to
  replicate, nothing a partition can hide); it also reports its start and its end (with the
  reason) to a log process on the test runner, which every side of a partition can reach.
  """

  @doc """
  The child spec of a BEAM test child: a `HordeC.Test.PartChild` named
  `{:via, HordeC.Registry, {reg, name(key)}}`, logging to `log` (`{name, node}`).
  """
  @spec beam_spec(term(), atom(), atom() | nil, {atom(), node()}) :: Supervisor.child_spec()
  def beam_spec(key, restart, reg, log) do
    Supervisor.child_spec({HordeC.Test.PartChild, %{key: key, reg: reg, log: log}},
      restart: restart
    )
  end

  @doc """
  The child spec of a C test child: a built-in `"echo"` worker whose init argument is
  `{:part, key}` (it answers `:get_arg` with it, as `HordeC.Test.PartChild` does).
  """
  @spec c_spec(term(), atom()) :: {module(), keyword()}
  def c_spec(key, restart \\ :permanent),
    do: {HordeC.CWorker, type: "echo", arg: {:part, key}, restart: restart}

  @doc "The registry key a test child of key `key` is named by."
  @spec name(term()) :: term()
  def name(key), do: {:part, key}

  @doc """
  The supervisor's records as this node's mirror holds them:
  `%{id => {key, kind, restart, member_node | nil, pid | nil}}` (`key` read from the child
  spec, so no process is asked).
  """
  @spec records(atom()) :: %{non_neg_integer() => tuple()}
  def records(sup) do
    for {id, kind, restart, _hash, body, member, pid} <-
          :ets.tab2list(HordeC.DynamicSupervisor.Mirror.children_table(sup)),
        into: %{} do
      {id, {key_of_body(kind, body), kind, restart, member && elem(member, 1), pid}}
    end
  end

  defp key_of_body(:c, {_type, {:part, key}}), do: key
  defp key_of_body(:beam, %{start: {_, _, [%{key: key} | _]}}), do: key
  defp key_of_body(_, _), do: :unknown

  @doc "`{key, pid}` of every live `HordeC.Test.PartChild` on this node."
  @spec local_copies() :: [{term(), pid()}]
  def local_copies do
    for pid <- Process.list(),
        {:dictionary, dict} <- [Process.info(pid, :dictionary)],
        {:part_key, key} <- [List.keyfind(dict, :part_key, 0)],
        do: {key, pid}
  end

  @doc "Drops the distribution links from this node to `nodes` (one side of a partition)."
  @spec disconnect([node()]) :: :ok
  def disconnect(nodes) do
    Enum.each(nodes, &:erlang.disconnect_node/1)
  end

  @doc """
  Registers the C process `pid` under `name(key)` through the replica `{reg, node(pid)}`, as a
  C process registers itself (owner `:hordec`: the replica of its own node vouches for it).
  Returns the replica's answer: `{:ok, replica}` or `{:error, {:already_registered, holder}}`.
  """
  @spec register_c(atom(), term(), pid()) :: term()
  def register_c(reg, key, pid),
    do: GenServer.call({reg, node(pid)}, {:register, name(key), pid, nil, :hordec}, 5_000)
end

defmodule HordeC.Test.PartChild do
  @moduledoc """
  The BEAM child of the partition tests: a GenServer named `{:via, HordeC.Registry, {reg,
  {:part, key}}}` (unnamed when `reg` is nil) that keeps `key` in its process dictionary (see
  `HordeC.Test.SupervisorPartitionHelpers.local_copies/0`), sends `{:part_started, key, pid,
  node}` to `log` from its init and `{:part_ended, key, pid, node, reason}` from its terminate
  (it traps exits, so a registry's `:name_conflict` exit signal ends it through terminate too).
  Calls: `:get_arg` replies `{:part, key}`, as the C echo worker does for its argument.
  """
  use GenServer

  def start_link(%{reg: nil} = arg), do: GenServer.start_link(__MODULE__, arg)

  def start_link(%{key: key, reg: reg} = arg),
    do: GenServer.start_link(__MODULE__, arg, name: {:via, HordeC.Registry, {reg, {:part, key}}})

  @impl true
  def init(%{key: key, log: log} = arg) do
    Process.flag(:trap_exit, true)
    Process.put(:part_key, key)
    send(log, {:part_started, key, self(), node()})
    {:ok, arg}
  end

  @impl true
  def handle_call(:get_arg, _from, arg), do: {:reply, {:part, arg.key}, arg}

  @impl true
  # An exit signal from anyone but the parent (a registry's name_conflict): end with it.
  def handle_info({:EXIT, _from, reason}, arg), do: {:stop, reason, arg}
  def handle_info(_msg, arg), do: {:noreply, arg}

  @impl true
  def terminate(reason, arg) do
    send(arg.log, {:part_ended, arg.key, self(), node(), reason})
  end
end
