defmodule HordeC.DynamicSupervisor do
  @moduledoc """
  A cluster-wide dynamic supervisor with `Horde.DynamicSupervisor`'s API, whose replicated state
  lives in `hordec` C nodes and whose children are BEAM processes on BEAM nodes **and C workers
  inside hordec nodes** (`HordeC.CWorker`).

      children = [
        {HordeC.DynamicSupervisor,
         name: MySup, strategy: :one_for_one, hordec: [:"h1@10.0.0.1", :"h2@10.0.0.2"]}
      ]

      {:ok, pid} = HordeC.DynamicSupervisor.start_child(MySup, {MyWorker, :arg})
      {:ok, cpid} = HordeC.DynamicSupervisor.start_child(MySup, {HordeC.CWorker, type: "kv", arg: []})
      HordeC.DynamicSupervisor.which_children(MySup)   # every child of the cluster, read locally

  Moving from Horde is an alias change. See `docs/supervisor.md` for the design and the protocol.

  ## How it works

  Each BEAM node runs one process registered as the supervisor's name: a **member** of the
  supervisor. It attaches to the first reachable hordec node of its `:hordec` list (creating the
  supervisor's replica there), mirrors the replica's state into ETS, and runs the BEAM children
  the replicas place on it, under its own local supervision (it links to them and traps exits,
  as a `DynamicSupervisor` does). Every hordec replica is a member too, running the C workers
  placed on it. Replicas replicate the state among themselves; when the attached hordec node
  goes away, the process fails over to the next one of its list and re-asserts the children it
  runs.

    * `start_child/2` asks the attached replica, which chooses the member with the
      `:distribution_strategy` (among the members able to run the child: BEAM children on BEAM
      members, C workers on replicas whose runtime has their worker type) and has it start the
      child. When it returns, this node's reads show the child.
    * `which_children/1` and `count_children/1` read the local mirror of the replicated state:
      no call to any member, nothing to hang on a dead one.
    * A child that exits is restarted by its member according to its restart type and the
      member's intensity (`:max_restarts` in `:max_seconds`).
    * When a member dies (a BEAM node, or a hordec node), its children are restarted on the
      others; when one stops gracefully (`stop/3`, its parent's shutdown, `:init.stop()`, SIGTERM
      to hordec) it hands its children over first.

  ## Differences from Horde.DynamicSupervisor (fixes)

    * Restart types hold when a member dies: `:temporary` children of a dead member are not
      restarted (Horde restarts them).
    * Restart intensity is per member and gives up only the child that crossed it: a
      crash-looping child is logged and removed, every other child keeps running (Horde restarts
      the node's whole supervisor and loses every child on it, #269).
    * A child keeps its id for life (restarts, takeovers, handoffs): never two records for one
      child.
    * Graceful stop hands every child over (after its `terminate/2`), nothing lost and nothing run
      twice while the cluster is healthy; a child running on a member whose record names another
      member (after a partition healed) is stopped, so the record decides.
    * `which_children/1` and `count_children/1` are local reads with no fan-out (Horde calls every
      member with an `:infinity` timeout); every call has a finite timeout.
    * `:process_redistribution` `:active` moves children when membership changes, so placement
      follows the hash ring.

  ## Restart intensity

  More than `:max_restarts` restarts within `:max_seconds` on one member make that member give
  up the child whose exit crossed the limit: it is not restarted, its record is removed (and an
  error is logged), and the member's other children keep running. Restarts are counted per
  member (each BEAM node, each hordec node), not per child and not cluster-wide.

  ## Partitions

  Under `HordeC.UniformDistribution` both sides of a partition restart the children of the
  members they lost: duplicates run while it lasts (names registered through `HordeC.Registry`
  resolve them by name conflict after the heal, and the records' last writer decides which copy
  keeps running). Under `HordeC.UniformQuorumDistribution` the minority stops its children and
  refuses new ones (`{:error, :quorum_not_met}`).
  """

  alias HordeC.Attachment
  alias HordeC.DynamicSupervisor.{Member, Mirror, Spec}

  @typedoc "The supervisor's name: a local atom on every BEAM node, and the replicas' name."
  @type supervisor :: atom() | {atom(), node()}

  @typedoc "An option of `start_link/1` (see there)."
  @type option ::
          {:name, atom()}
          | {:strategy, :one_for_one}
          | {:distribution_strategy, module()}
          | {:process_redistribution, :passive | :active}
          | {:members, :auto | [atom() | {atom(), node()}]}
          | {:max_restarts, non_neg_integer()}
          | {:max_seconds, pos_integer()}
          | {:max_children, non_neg_integer() | :infinity}
          | {:extra_arguments, list()}
          | {:shutdown, timeout() | :brutal_kill}
          | {:hordec, node() | :local | [node() | :local]}
          | {:timeout, pos_integer()}
          | {:start_timeout, pos_integer()}

  @typedoc "What `start_child/2` returns."
  @type on_start_child ::
          {:ok, pid()}
          | {:ok, pid(), term()}
          | :ignore
          | {:error,
             :max_children
             | :no_alive_nodes
             | :quorum_not_met
             | {:shutting_down, String.t()}
             | {:node_dead_or_shutting_down, String.t()}
             | {:unknown_worker_type, binary()}
             | term()}

  @doc "Module-based supervisors: returns the options to start with, or `:ignore`."
  @callback init(init_arg :: term()) :: {:ok, [option()]} | :ignore

  # ------------------------------------------------------------------ starting

  defmacro __using__(options) do
    quote location: :keep, bind_quoted: [options: options] do
      @behaviour HordeC.DynamicSupervisor

      @doc """
      Returns a specification to start this module under a supervisor.
      See `Supervisor`.
      """
      def child_spec(arg) do
        default = %{id: __MODULE__, start: {__MODULE__, :start_link, [arg]}, type: :supervisor}
        Supervisor.child_spec(default, unquote(Macro.escape(options)))
      end

      defoverridable child_spec: 1
    end
  end

  @doc """
  Starts this BEAM node's member of the supervisor, registered as `:name`.

  Options (Horde.DynamicSupervisor's, plus `:hordec`):

    * `:name` (required) – an atom: the local name, and the replicas' name on hordec nodes.
    * `:strategy` (required) – `:one_for_one`, the only strategy (as in Horde: anything else
      makes start_link return `{:error, {:supervisor_data, {:invalid_strategy, strategy}}}`).
    * `:distribution_strategy` – `HordeC.UniformDistribution` (default),
      `HordeC.UniformQuorumDistribution` or `HordeC.UniformRandomDistribution` (Horde's module
      names are accepted too).
    * `:process_redistribution` – `:passive` (default: children move only when their member
      dies or leaves) or `:active` (they also move when a member joins and the hash ring places
      them there; they exit with `{:shutdown, :process_redistribution}`).
    * `:members` – `:auto` (default: every replica of `:hordec` and every BEAM node running the
      supervisor) or an explicit list of `{name, node}` — hordec replicas *and* BEAM members (a
      bare atom `name` stands for `{name, h}` for every `h` of `:hordec`), set at the first
      attach; manage it with `HordeC.Cluster.set_members/3`.
    * `:max_restarts` (3), `:max_seconds` (5) – the intensity, per member (see the module doc).
    * `:max_children` (`:infinity`) – per member.
    * `:extra_arguments` (`[]`) – prepended to the arguments of every child's start function.
    * `:shutdown` – the member's own shutdown in `child_spec/1` (default `:infinity`: time
      for every child's `shutdown`).
    * `:hordec` – the hordec node to attach to, or a list in order of preference (failover
      goes down the list); `:local` (alone or in the list) is this node's `HordeC.Daemon`: with
      `members: :auto`, the daemon then adds the replicas on the daemons of the other BEAM nodes
      it discovers to the members. Default: `Application.get_env(:horde_c, :hordec)`.
    * `:timeout` – how long a call may take, failover included (default 5000 ms);
      `:start_timeout` – for `start_child/2` (default 15000 ms). After it, calls exit with
      `{:timeout | :noconnection, {HordeC.DynamicSupervisor, function, args}}`.

  Horde's `:proxy_message_ttl` and `:delta_crdt_options` are accepted and ignored; any other
  option raises `ArgumentError`, as do invalid values of the options above (except those Elixir's
  `DynamicSupervisor` refuses in init: `:max_restarts`, `:max_seconds`, `:max_children`,
  `:extra_arguments`, `:strategy`, which make start_link return `{:error, {:supervisor_data,
  reason}}`).

  Returns once attached with the mirror loaded (or, with no hordec node reachable, at once: it
  keeps trying, and calls wait for it within their timeout).
  """
  @spec start_link([option()]) :: GenServer.on_start()
  def start_link(options) do
    Spec.check!(options)
    Attachment.start_link(Mirror, options, name: Keyword.fetch!(options, :name))
  end

  @doc """
  Starts a module-based supervisor: `module.init(init_arg)` returns `{:ok, options}` (see
  `start_link/1`; `init/1` below helps) or `:ignore`. `opts` must include `:name`; its other
  options are defaults that `init/1`'s override.
  """
  @spec start_link(module(), term(), keyword()) :: GenServer.on_start()
  def start_link(module, init_arg, opts \\ []) when is_atom(module) and is_list(opts) do
    name = Keyword.get(opts, :name)

    unless is_atom(name) and name != nil do
      raise ArgumentError, "expected :name to be given and to be an atom, got: #{inspect(name)}"
    end

    Attachment.start_link(Mirror, {:module, module, init_arg, opts}, name: name)
  end

  @doc """
  For `init/1` of module-based supervisors: returns `{:ok, options}`. Raises `ArgumentError`
  without `:strategy`, as Horde's does.
  """
  @spec init([option()]) :: {:ok, [option()]}
  def init(options) when is_list(options) do
    unless Keyword.has_key?(options, :strategy) do
      raise ArgumentError, "expected :strategy option to be given"
    end

    {:ok, options}
  end

  @doc "A child specification: `id` is the name, `type: :supervisor`."
  @spec child_spec([option()]) :: Supervisor.child_spec()
  def child_spec(options) when is_list(options) do
    spec = %{
      id: Keyword.get(options, :name, __MODULE__),
      start: {__MODULE__, :start_link, [options]},
      type: :supervisor
    }

    case Keyword.fetch(options, :shutdown) do
      {:ok, shutdown} -> Map.put(spec, :shutdown, shutdown)
      :error -> spec
    end
  end

  @doc """
  Stops this node's member gracefully: it leaves placement, stops its children (in parallel,
  each with its `shutdown`) and hands each over to another member, which starts it once it is
  down; then it leaves. Unlike Horde's, the name is enough.

  The same happens when its parent supervisor shuts it down — so `:init.stop()` hands the
  children over when the supervisor runs in an application's supervision tree (give it enough
  `shutdown`: the default for `child_spec/1` is `:infinity`). A member killed, or whose node
  dies, hands nothing over: the replicas see it die and restart its children elsewhere
  (`:temporary` ones are not restarted).
  """
  @spec stop(supervisor(), term(), timeout()) :: :ok
  def stop(supervisor, reason \\ :normal, timeout \\ :infinity),
    do: GenServer.stop(local!(supervisor), reason, timeout)

  # ------------------------------------------------------------------ children

  @doc """
  Starts a child somewhere in the cluster. `child_spec` is any child specification
  (`{Mod, arg}`, `Mod`, a map), or `{HordeC.CWorker, type: ..., arg: ...}` for a C worker.

  Returns `{:ok, pid}`, `{:ok, pid, info}`, `:ignore` or `{:error, reason}` (see
  `t:on_start_child/0`; an invalid spec gives Elixir `DynamicSupervisor`'s errors such as
  `{:error, {:invalid_restart_type, r}}`). When it returns, `which_children/1` on this node shows
  the child. The same spec can be started any number of times; each child gets its own id.
  """
  @spec start_child(supervisor(), Supervisor.child_spec() | {module(), term()} | module()) ::
          on_start_child()
  def start_child(supervisor, child_spec) do
    spec = Supervisor.child_spec(child_spec, [])

    case remote(supervisor) do
      {:remote, node} ->
        :erpc.call(node, __MODULE__, :start_child, [local!(supervisor), spec], 30_000)

      name ->
        case Spec.child(spec) do
          {:ok, child} ->
            # The child's id is chosen here, so that the request sent again after a failover names the same
            # record: the second replica finds the child (or both writes meet in one record and one copy runs).
            id = :rand.uniform(0x7FFFFFFFFFFFFFFE)

            HordeC.Telemetry.span(
              [:horde_c, :dynamic_supervisor, :start_child],
              %{supervisor: name},
              fn ->
                result =
                  Attachment.call(name, {:start_child, child, id}, config(name).start_timeout,
                    where: {__MODULE__, :start_child, [supervisor, child_spec]}
                  )

                {result, %{result: result_tag(result)}}
              end
            )

          {:error, _} = error ->
            error
        end
    end
  end

  # The telemetry stop event's `result`: :ok, :error, :ignore...
  defp result_tag({tag, _}) when is_atom(tag), do: tag
  defp result_tag({tag, _, _}) when is_atom(tag), do: tag
  defp result_tag(other) when is_atom(other), do: other
  defp result_tag(_), do: :other

  @doc """
  Terminates the child `pid` (on whichever member runs it, with its `shutdown`) and removes it.
  Returns `:ok` or `{:error, :not_found}` (or `{:error, {:node_dead_or_shutting_down, msg}}`
  when its member cannot be reached).
  """
  @spec terminate_child(supervisor(), pid()) :: :ok | {:error, term()}
  def terminate_child(supervisor, pid) when is_pid(pid) do
    case remote(supervisor) do
      {:remote, node} ->
        :erpc.call(node, __MODULE__, :terminate_child, [local!(supervisor), pid], 30_000)

      name ->
        Attachment.call(name, {:terminate_child, pid}, config(name).timeout,
          where: {__MODULE__, :terminate_child, [supervisor, pid]}
        )
    end
  end

  @doc """
  Every child of the supervisor, on every member, from this node's mirror of the replicated
  state: `[{:undefined, pid | :restarting, :worker | :supervisor, modules}]` (`:restarting`: being
  handed over to another member). C workers are `:worker`s with modules `[HordeC.CWorker]`.
  """
  @spec which_children(supervisor()) :: [{:undefined, pid() | :restarting, atom(), term()}]
  def which_children(supervisor) do
    supervisor
    |> rows()
    |> Enum.map(fn {_id, kind, _restart, _hash, body, member, pid} ->
      {type, modules} = type_modules(kind, body)
      {:undefined, if(member, do: pid, else: :restarting), type, modules}
    end)
  end

  @doc """
  Counts the children, from this node's mirror: `%{specs: n, active: n, supervisors: n,
  workers: n}` (`active`: running now, not being handed over).
  """
  @spec count_children(supervisor()) :: %{
          specs: non_neg_integer(),
          active: non_neg_integer(),
          supervisors: non_neg_integer(),
          workers: non_neg_integer()
        }
  def count_children(supervisor) do
    supervisor
    |> rows()
    |> Enum.reduce(%{specs: 0, active: 0, supervisors: 0, workers: 0}, fn
      {_id, kind, _r, _h, body, member, _pid}, acc ->
        {type, _} = type_modules(kind, body)
        key = if type == :supervisor, do: :supervisors, else: :workers
        acc = %{acc | specs: acc.specs + 1}
        acc = Map.update!(acc, key, &(&1 + 1))
        if member, do: %{acc | active: acc.active + 1}, else: acc
    end)
  end

  defp rows(supervisor) do
    name = local!(supervisor)
    :ets.tab2list(Mirror.children_table(name))
  rescue
    ArgumentError -> unknown!(supervisor)
  end

  defp type_modules(:c, _body), do: {:worker, [HordeC.CWorker]}

  defp type_modules(_beam, body) when is_map(body) do
    type = Map.get(body, :type, :worker)

    modules =
      case body do
        %{modules: modules} -> modules
        %{start: {m, _, _}} -> [m]
        _ -> []
      end

    {type, modules}
  end

  defp type_modules(_, _), do: {:worker, []}

  # ------------------------------------------------------------------ members and quorum

  @doc """
  Returns `:ok` once the members have quorum under the supervisor's distribution strategy
  (at once for strategies that always have it), as seen in this node's mirror. Exits with
  `{:timeout, {HordeC.DynamicSupervisor, :wait_for_quorum, [supervisor, timeout]}}` if they
  have not within `timeout` ms.
  """
  @spec wait_for_quorum(supervisor(), timeout()) :: :ok
  def wait_for_quorum(supervisor, timeout) do
    name = local!(supervisor)
    deadline = if timeout == :infinity, do: :infinity, else: now() + timeout
    wait_quorum(name, config(name).distribution, deadline, [supervisor, timeout])
  end

  defp wait_quorum(name, strategy, deadline, args) do
    cond do
      strategy.has_quorum?(members_info(name)) ->
        :ok

      deadline != :infinity and now() >= deadline ->
        exit({:timeout, {__MODULE__, :wait_for_quorum, args}})

      true ->
        Process.sleep(if deadline == :infinity, do: 20, else: min(20, max(deadline - now(), 0)))
        wait_quorum(name, strategy, deadline, args)
    end
  end

  @doc """
  The members with their statuses, as this node's mirror shows them (`%Member{}`: name, status,
  kind). Members listed without a status yet are `:uninitialized`.
  """
  @spec members_info(supervisor()) :: [Member.t()]
  def members_info(supervisor) do
    name = local!(supervisor)
    info = Attachment.info_table(name)

    for m <- Attachment.members(name) do
      case :ets.lookup(info, {:status, m}) do
        [{_, {kind, status, _pid, _via, types}}] ->
          %Member{name: m, status: status, kind: kind, types: types}

        [] ->
          %Member{name: m, status: :uninitialized}
      end
    end
  rescue
    ArgumentError -> unknown!(supervisor)
  end

  @doc """
  Where `child_spec` would be placed now, computed on this node from its mirror, as the replicas
  compute it: `HordeC.UniformDistribution`'s ring over the alive members eligible for the child
  (BEAM members for BEAM children; for a C worker, the first replica clockwise from the child's
  point that has its worker type). `{:ok, {name, node}}` or `{:error, reason}`. Meaningless for
  `HordeC.UniformRandomDistribution`.
  """
  @spec placement(supervisor(), Supervisor.child_spec() | {module(), term()} | module()) ::
          {:ok, {atom(), node()}} | {:error, term()}
  def placement(supervisor, child_spec) do
    name = local!(supervisor)
    spec = Supervisor.child_spec(child_spec, [])

    with {:ok, {kind, _restart, hash, body}} <- Spec.child(spec) do
      all = members_info(name)

      cond do
        not config(name).distribution.has_quorum?(all) ->
          {:error, :quorum_not_met}

        kind == :beam ->
          case HordeC.UniformDistribution.choose_node(hash, Enum.filter(all, &(&1.kind == :beam))) do
            {:ok, %Member{name: m}} -> {:ok, m}
            error -> error
          end

        true ->
          {type, _arg} = body
          alive = HordeC.DistributionStrategy.alive(Enum.filter(all, &(&1.kind == :c)))
          ring = HordeC.HashRing.new(Enum.map(alive, & &1.name))
          types = Map.new(alive, &{&1.name, &1.types})

          case HordeC.HashRing.key_to_node(ring, hash, &(type in Map.fetch!(types, &1))) do
            {:ok, m} -> {:ok, m}
            {:error, {:invalid_ring, :no_nodes}} -> {:error, :no_alive_nodes}
            {:error, :none} -> {:error, {:unknown_worker_type, type}}
          end
      end
    end
  end

  # ------------------------------------------------------------------ helpers

  defp config(name) do
    :ets.lookup_element(Attachment.info_table(name), :sup_config, 2)
  rescue
    ArgumentError -> unknown!(name)
  end

  defp local!(name) when is_atom(name), do: name
  defp local!({name, node}) when is_atom(name) and is_atom(node), do: name

  defp local!(other),
    do: raise(ArgumentError, "expected a supervisor name or {name, node}, got: #{inspect(other)}")

  defp remote({name, node}) when node == node(), do: name
  defp remote({_name, node}) when is_atom(node), do: {:remote, node}
  defp remote(name), do: local!(name)

  defp unknown!(supervisor),
    do: raise(ArgumentError, "unknown supervisor: #{inspect(supervisor)}")

  defp now, do: System.monotonic_time(:millisecond)
end
