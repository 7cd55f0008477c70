defmodule HordeC.Registry do
  @moduledoc """
  A cluster-wide process registry with `Horde.Registry`'s API (and Elixir `Registry`'s
  `:duplicate` keys), whose replicas live in `hordec` C nodes.

      {:ok, _} = HordeC.Registry.start_link(name: MyReg, keys: :unique,
                                            hordec: [:"h1@10.0.0.1", :"h2@10.0.0.2"])
      {:ok, _} = HordeC.Registry.register(MyReg, "worker-1", :some_value)
      HordeC.Registry.lookup(MyReg, "worker-1")     #=> [{pid, :some_value}], on every BEAM node

      # as a name
      name = {:via, HordeC.Registry, {MyReg, "counter"}}
      {:ok, _} = Agent.start_link(fn -> 0 end, name: name)
      Agent.get(name, & &1)                          # from any BEAM node of the cluster

  Moving from Horde is an alias change: every function of `Horde.Registry` is here with the same
  arguments and results. See `docs/registry.md` for the design and what "eventually consistent"
  means here.

  ## How it works

  On each BEAM node, `start_link/1` starts one process registered as the registry's name. It
  attaches to the first reachable `hordec` node of its `:hordec` list (creating the registry's
  replica there), mirrors the replica into ETS tables, and links to the processes of its node
  that register (as Elixir's `Registry` does: if the registry's process stops, they get its exit
  signal). Replicas on different hordec nodes replicate to each other.

    * **Reads** (`lookup/2`, `match/4`, `select/2`, `count/1`, `count_match/4`, `count_select/2`,
      `keys/2`, `values/3`, `dispatch/4`, `meta/2`, `whereis_name/1`) read the local ETS mirror
      in the calling process: no message is sent.
    * **Writes** (`register/3`, `unregister/2`, `unregister_match/4`, `update_value/3`,
      `put_meta/3`, `delete_meta/2`, via-tuple registration) are calls from the calling process
      to the attached replica. When one returns, reads on this BEAM node show it
      (read-your-writes); other BEAM nodes see it milliseconds later.
    * When the attached hordec node dies or is cut off, the process fails over to the next one of
      the list and re-asserts the registrations of its node's processes: killing a hordec node
      takes no live registration with it. Writes made meanwhile wait for the failover (within
      their timeout of 5 s); with no hordec node reachable they exit with
      `{:noconnection, {HordeC.Registry, function, args}}`.

  ## Differences from Horde.Registry (fixes)

    * Registering is atomic per key through a hordec node: of concurrent `register/3` calls for
      one key, one gets `{:ok, _}` and the others `{:error, {:already_registered, pid}}`.
    * Read-your-writes on the node that wrote (Horde: not even locally since 0.9.0).
    * A process can only unregister its own keys (Horde lets any process delete any name).
    * Concurrent registrations of one key through different hordec nodes, or on both sides of a
      partition, end with the latest (hybrid logical clock) winning everywhere; the loser gets
      the exit signal `{:name_conflict, {key, value}, registry, winner_pid}` exactly once.
    * A registered process that dies, and every process of a BEAM node that goes down, disappears
      from every read on every node (`select/2`, `match/4`, `count/1`... included).
    * `send/2` works with `{registry, key, value}` via tuples too; `keys: :duplicate` works.
    * Listeners that are not running are skipped instead of crashing the registry.

  ## Duplicate keys

  With `keys: :duplicate`, a key may be registered by many processes, as in Elixir's `Registry`
  (`dispatch/4`, `lookup/2`, `match/4`... return all of them). One difference: a process holds
  at most one entry per key, so registering a key it already holds returns
  `{:error, {:already_registered, self()}}` (Elixir's Registry would add a second entry).
  `update_value/3` and via tuples are for unique registries only, as in Elixir.

  ## Listeners

  Every process named in `:listeners` (on every BEAM node running the registry) receives
  `{:register, registry, key, pid, value}` and `{:unregister, registry, key, pid}` for every
  change of the registry, wherever it was made (a new value is a `:register` again). When the
  registry's process starts, the entries already there are told as `:register`s; after a failover
  or a resync, only what changed. When a unique key changes hands (a conflict), the loser's
  `:unregister` comes before the winner's `:register`.
  """

  alias HordeC.Attachment
  alias HordeC.Registry.{Mirror, Spec}

  @typedoc "The registry's name (a local atom on every BEAM node, and the replica's name)."
  @type registry :: atom()
  @type key :: term()
  @type value :: term()
  @type meta_key :: atom() | tuple()
  @type meta_value :: term()
  @type keys :: :unique | :duplicate
  @typedoc "A replica of the registry: `{registry_name, hordec_node}`."
  @type member :: {atom(), node()}

  @typedoc "An option of `start_link/1` (see there)."
  @type start_option ::
          {:name, registry()}
          | {:keys, keys()}
          | {:listeners, [atom()]}
          | {:meta, [{meta_key(), meta_value()}]}
          | {:members, :auto | [member() | atom()]}
          | {:hordec, node() | :local | [node() | :local]}

  @doc "Module-based registries: returns the options to start with, or `:ignore`."
  @callback init(options :: keyword()) :: {:ok, keyword()} | :ignore

  @timeout 5_000
  @options [
    :name,
    :keys,
    :listeners,
    :meta,
    :members,
    :hordec,
    :timeout,
    :attach_timeout,
    :drop_stream_seq
  ]
  # Horde.Registry's options that mean nothing here; accepted so that migrating is an alias change.
  @ignored [:partitions, :delta_crdt_options, :distribution_strategy]

  # ------------------------------------------------------------------ starting

  defmacro __using__(options) do
    quote location: :keep, bind_quoted: [options: options] do
      @behaviour HordeC.Registry

      @doc """
      Returns a specification to start this module under a supervisor.
      See `Supervisor`.
      """
      def child_spec(arg) do
        default = %{id: __MODULE__, start: {__MODULE__, :start_link, [arg]}}
        Supervisor.child_spec(default, unquote(Macro.escape(options)))
      end

      defoverridable child_spec: 1
    end
  end

  @doc """
  Starts the registry's process on this BEAM node, registered as `:name`.

  Options:

    * `:name` (required) – an atom: the local name, and the replica's name on hordec nodes.
    * `:keys` (required) – `:unique` or `:duplicate`.
    * `:hordec` – the hordec node to attach to, or a list of them in order of preference
      (failover goes down the list); `:local` (alone or in the list) is this node's
      `HordeC.Daemon`: with `members: :auto`, the daemon then adds the replicas on the daemons of
      the other BEAM nodes it discovers to the members. Default:
      `Application.get_env(:horde_c, :hordec)`.
    * `:members` – the replicas that replicate this registry: `:auto` (the default: the replica
      on every node of `:hordec`, added to the membership at every attach — a failover too — and
      never removed) or an explicit list of `{name, hordec_node}` (a bare atom `name` stands for
      `{name, h}` for every `h` of `:hordec`), set when the process first attaches. Manage the
      membership with `HordeC.Cluster.set_members/3` only with explicit lists: with `:auto`, a
      member removed comes back when a node that lists it attaches.
    * `:listeners` – names of local processes told of every change (see the module doc).
    * `:meta` – `[{key, value}]` put with `put_meta/3` when the process first attaches.
    * `:timeout` – how long a write may take, failover included (default 5000 ms); after it a
      write exits with `{:timeout | :noconnection, {HordeC.Registry, function, args}}`.

  `:partitions`, `:delta_crdt_options` and `:distribution_strategy` (Horde's) are accepted and
  ignored; anything else raises `ArgumentError`, as do invalid values.

  Returns once the process is attached and its mirror is loaded. When no hordec node is
  reachable it starts anyway, logs a warning and keeps trying; writes wait for it.
  """
  @spec start_link([start_option()]) :: GenServer.on_start()
  def start_link(options) do
    config = config!(options)
    Attachment.start_link(Mirror, config, name: config.name)
  end

  @doc """
  Starts a module-based registry: `module.init(init_arg)` returns `{:ok, options}` (see
  `start_link/1`; `init/1` below helps) or `:ignore`. `opts` must include `:name`.
  """
  @spec start_link(module(), term(), keyword()) :: GenServer.on_start()
  def start_link(module, init_arg, opts \\ []) when is_atom(module) and is_list(opts) do
    name = Keyword.get(opts, :name)

    unless is_atom(name) and name != nil do
      raise ArgumentError, "expected :name to be given and to be an atom, got: #{inspect(name)}"
    end

    Attachment.start_link(Mirror, {:module, module, init_arg, opts}, name: name)
  end

  @doc "For `init/1` of module-based registries: returns `{:ok, options}`."
  @spec init([start_option()]) :: {:ok, [start_option()]}
  def init(options) when is_list(options), do: {:ok, options}

  @doc "A child specification (`id` is the registry's name)."
  @spec child_spec([start_option()]) :: Supervisor.child_spec()
  def child_spec(options) when is_list(options) do
    %{id: Keyword.get(options, :name, __MODULE__), start: {__MODULE__, :start_link, [options]}}
  end

  @doc """
  Stops the registry's process on this node (not the replicas on hordec nodes, nor the
  registry on other BEAM nodes). The registrations of this node's processes are removed
  everywhere; being linked to it, those processes get its exit signal (`:normal` leaves them
  running, unregistered). Unlike `Horde.Registry.stop/3`, the name is enough.
  """
  @spec stop(registry(), term(), timeout()) :: :ok
  def stop(registry, reason \\ :normal, timeout \\ :infinity) when is_atom(registry),
    do: GenServer.stop(registry, reason, timeout)

  @doc false
  # Validates start options (as Elixir's Registry does: ArgumentError naming what was wrong) and
  # returns the configuration the registry's process runs with.
  @spec config!(keyword()) :: map()
  def config!(options) do
    unless Keyword.keyword?(options) do
      raise ArgumentError, "expected a keyword list of options, got: #{inspect(options)}"
    end

    case Keyword.keys(options) -- (@options ++ @ignored) do
      [] -> :ok
      unknown -> raise ArgumentError, "unknown options for HordeC.Registry: #{inspect(unknown)}"
    end

    name = options[:name]

    unless is_atom(name) and name != nil do
      raise ArgumentError, "expected :name to be given and to be an atom, got: #{inspect(name)}"
    end

    kind = options[:keys]

    unless kind in [:unique, :duplicate] do
      raise ArgumentError,
            "expected :keys to be given and be one of :unique or :duplicate, got: #{inspect(kind)}"
    end

    listeners = Keyword.get(options, :listeners, [])

    unless is_list(listeners) and Enum.all?(listeners, &is_atom/1) do
      raise ArgumentError,
            "expected :listeners to be a list of named processes, got: #{inspect(listeners)}"
    end

    meta = Keyword.get(options, :meta, [])

    unless is_list(meta) and
             Enum.all?(meta, &match?({k, _} when is_atom(k) or is_tuple(k), &1)) do
      raise ArgumentError,
            "expected :meta to be a list of {key, value} with atom or tuple keys, got: #{inspect(meta)}"
    end

    # :local is this node's HordeC.Daemon; without the option, config :horde_c, :hordec.
    hordecs = HordeC.Daemon.hordecs!(options)

    members =
      case Keyword.get(options, :members, :auto) do
        :auto ->
          :auto

        list when is_list(list) ->
          Enum.flat_map(list, fn
            {n, h} = m when is_atom(n) and is_atom(h) -> [m]
            n when is_atom(n) -> for h <- hordecs, do: {n, h}
            _ -> raise ArgumentError, bad_members(list)
          end)
          |> Enum.uniq()

        other ->
          raise ArgumentError, bad_members(other)
      end

    for opt <- [:timeout, :attach_timeout] do
      t = Keyword.get(options, opt, @timeout)

      unless is_integer(t) and t > 0 do
        raise ArgumentError,
              "expected #{inspect(opt)} to be a positive integer, got: #{inspect(t)}"
      end
    end

    %{
      name: name,
      kind: kind,
      listeners: listeners,
      meta: meta,
      hordecs: Enum.uniq(hordecs),
      members: members,
      timeout: Keyword.get(options, :timeout, @timeout),
      attach_timeout: Keyword.get(options, :attach_timeout, @timeout),
      drop_seq: Keyword.get(options, :drop_stream_seq)
    }
  end

  defp bad_members(got),
    do: "expected :members to be :auto or a list of {name, hordec_node}, got: #{inspect(got)}"

  # ------------------------------------------------------------------ writes

  @doc """
  Registers the calling process under `key` with `value`.

  Returns `{:ok, owner}` (`owner` is the registry's local process, which links to the caller)
  or `{:error, {:already_registered, pid}}` when the key is taken (in a `:duplicate` registry:
  when the caller already holds it). Atomic through the attached hordec node. When it returns,
  reads on this node show the registration.
  """
  @spec register(registry(), key(), value()) ::
          {:ok, pid()} | {:error, {:already_registered, pid()}}
  def register(registry, key, value) when is_atom(registry) do
    do_register(registry, key, value, self(), {__MODULE__, :register, [registry, key, value]})
  end

  # Every registration (register/3 and via tuples) is a [:horde_c, :registry, :register] span.
  defp do_register(registry, key, value, pid, where) do
    HordeC.Telemetry.span([:horde_c, :registry, :register], %{registry: registry, key: key}, fn ->
      result = do_register!(registry, key, value, pid, where)

      case result do
        {:ok, _} -> {result, %{result: :ok}}
        {:error, {:already_registered, _}} -> {result, %{result: :already_registered}}
        _ -> {result, %{result: :error}}
      end
    end)
  end

  defp do_register!(registry, key, value, pid, where) do
    owner = owner!(registry)
    kind = kind!(registry)

    if holds?(registry, kind, key, pid) do
      {:error, {:already_registered, pid}}
    else
      request = {:register, key, pid, value, owner}
      register_loop(registry, request, where, deadline(timeout(registry)), owner, 0)
    end
  end

  defp register_loop(registry, request, where, deadline, owner, attempt) do
    {:register, _key, pid, _value, _owner} = request

    case Attachment.call(registry, request, remaining(deadline), where: where) do
      {:ok, _replica} ->
        {:ok, owner}

      # Our own earlier attempt, applied by a replica whose reply was lost in a failover.
      {:error, {:already_registered, ^pid}} ->
        {:ok, owner}

      {:error, {:already_registered, holder}} = error ->
        # A local holder that is already dead is only waiting for its DOWN to reach the replica
        # (a supervisor restarting a via-named child hits this): let that happen, then retry.
        # (A holder that stays dead and registered is an old incarnation's entry, about to go:
        # back off a little between attempts.)
        if node(holder) == node() and not Process.alive?(holder) and remaining(deadline) > 0 do
          if attempt > 0, do: Process.sleep(min(attempt * 2, 50))
          Attachment.sync(registry, remaining(deadline))
          register_loop(registry, request, where, deadline, owner, attempt + 1)
        else
          error
        end

      {:error, _} = error ->
        refused!(error, "register/3", request)
    end
  end

  @doc """
  Unregisters the calling process's entries under `key` (only the caller's own: another process's
  registration of the key is left alone). Always `:ok`.
  """
  @spec unregister(registry(), key()) :: :ok
  def unregister(registry, key) when is_atom(registry) do
    request = {:unregister, key, self()}

    HordeC.Telemetry.span(
      [:horde_c, :registry, :unregister],
      %{registry: registry, key: key},
      fn ->
        result =
          Attachment.call(registry, request, timeout(registry),
            where: {__MODULE__, :unregister, [registry, key]}
          )
          |> ok!("unregister/2", request)

        {result, %{}}
      end
    )
  end

  @doc """
  Unregisters the calling process's entry under `key` if its value matches `pattern` and
  `guards` (as in `match/4`). Always `:ok`.
  """
  @spec unregister_match(registry(), key(), :ets.match_pattern(), [term()]) :: :ok
  def unregister_match(registry, key, pattern, guards \\ [])
      when is_atom(registry) and is_list(guards) do
    me = self()
    rows = for {_, ^me, _} = row <- rows!(registry, key), do: row
    spec = [{{:_, :_, pattern}, guards, [true]}]

    if Enum.any?(Spec.run(rows, spec, "unregister_match/4"), &(&1 == true)),
      do: unregister(registry, key),
      else: :ok
  end

  @doc """
  Updates the value of the calling process's registration of `key` in a unique registry to
  `callback.(old_value)`. Returns `{new_value, old_value}`, or `:error` when the caller does not
  hold `key`. Raises `ArgumentError` for a duplicate registry.
  """
  @spec update_value(registry(), key(), (value() -> value())) ::
          {new_value :: value(), old_value :: value()} | :error
  def update_value(registry, key, callback) when is_atom(registry) and is_function(callback, 1) do
    unless kind!(registry) == :unique do
      raise ArgumentError,
            "HordeC.Registry.update_value/3 is not supported for duplicate registries"
    end

    me = self()

    case rows!(registry, key) do
      [{_, ^me, old}] ->
        new = callback.(old)

        case Attachment.call(registry, {:update_value, key, me, new}, timeout(registry),
               where: {__MODULE__, :update_value, [registry, key, callback]}
             ) do
          :ok -> {new, old}
          :error -> :error
          error -> refused!(error, "update_value/3", {:update_value, key, me, new})
        end

      _ ->
        :error
    end
  end

  @doc "Sets the registry's metadata `key` to `value`, on every node. Returns `:ok`."
  @spec put_meta(registry(), meta_key(), meta_value()) :: :ok
  def put_meta(registry, key, value)
      when is_atom(registry) and (is_atom(key) or is_tuple(key)) do
    Attachment.call(registry, {:put_meta, key, value}, timeout(registry),
      where: {__MODULE__, :put_meta, [registry, key, value]}
    )
    |> ok!("put_meta/3", {:put_meta, key, value})
  end

  @doc "Deletes the registry's metadata `key`, on every node. Returns `:ok`."
  @spec delete_meta(registry(), meta_key()) :: :ok
  def delete_meta(registry, key) when is_atom(registry) and (is_atom(key) or is_tuple(key)) do
    Attachment.call(registry, {:delete_meta, key}, timeout(registry),
      where: {__MODULE__, :delete_meta, [registry, key]}
    )
    |> ok!("delete_meta/2", {:delete_meta, key})
  end

  # ------------------------------------------------------------------ reads (local ETS)

  @doc "The `{pid, value}` entries under `key` (one at most in a unique registry)."
  @spec lookup(registry(), key()) :: [{pid(), value()}]
  def lookup(registry, key) when is_atom(registry) do
    for {_, pid, value} <- rows!(registry, key), live?(pid), do: {pid, value}
  end

  @doc "`lookup/2` of a via tuple: `lookup({:via, HordeC.Registry, {registry, key}})`."
  @spec lookup({:via, module(), {registry(), key()} | {registry(), key(), value()}}) ::
          [{pid(), value()}]
  def lookup({:via, _, {registry, key}}), do: lookup(registry, key)
  def lookup({:via, _, {registry, key, _value}}), do: lookup(registry, key)

  @doc """
  The `{pid, value}` entries under `key` whose value matches `pattern` and `guards`
  (an ETS match pattern: `:_` and `:"$1"`... as in `Registry.match/4`).
  """
  @spec match(registry(), key(), :ets.match_pattern(), [term()]) :: [{pid(), value()}]
  def match(registry, key, pattern, guards \\ []) when is_atom(registry) and is_list(guards) do
    rows = for {_, pid, _} = row <- rows!(registry, key), live?(pid), do: row

    Spec.run(
      rows,
      [{{:_, :_, pattern}, guards, [{{{:element, 2, :"$_"}, {:element, 3, :"$_"}}}]}],
      "match/4"
    )
  end

  @doc "The number of entries `match/4` would return."
  @spec count_match(registry(), key(), :ets.match_pattern(), [term()]) :: non_neg_integer()
  def count_match(registry, key, pattern, guards \\ [])
      when is_atom(registry) and is_list(guards),
      do: length(match(registry, key, pattern, guards))

  @doc "The number of entries in the registry."
  @spec count(registry()) :: non_neg_integer()
  def count(registry) when is_atom(registry) do
    case :ets.info(registry, :size) do
      :undefined -> unknown!(registry)
      n -> n
    end
  end

  @doc """
  The keys `pid` is registered under (any pid, on any node), in no particular order.

  For a process of another node in a unique registry this scans the registry (its keys are not
  indexed on this node, to save memory); for the caller's own node it is a lookup.
  """
  @spec keys(registry(), pid()) :: [key()]
  def keys(registry, pid) when is_atom(registry) and is_pid(pid) do
    cond do
      not live?(pid) ->
        []

      Mirror.indexed?(kind!(registry), pid) ->
        Mirror.keys_of(Mirror.pids_table(registry), pid)

      true ->
        # A unique registry indexes only this node's processes (see Mirror): scan for others'.
        :ets.select(registry, [{{:"$1", pid, :_}, [], [:"$1"]}])
    end
  end

  @doc "The values `pid` has registered under `key`: `[value]` or `[]`."
  @spec values(registry(), key(), pid()) :: [value()]
  def values(registry, key, pid) when is_atom(registry) and is_pid(pid) do
    if live?(pid), do: for({_, ^pid, value} <- rows!(registry, key), do: value), else: []
  end

  @doc """
  Calls `fun.(entries)` (or `apply(m, f, [entries | args])`) with the `{pid, value}` entries
  under `key`, in the calling process, if there are any. Returns `:ok`. `opts` is accepted for
  compatibility (`:parallel` has no meaning here).
  """
  @spec dispatch(
          registry(),
          key(),
          ([{pid(), value()}] -> term()) | {module(), atom(), [term()]},
          keyword()
        ) :: :ok
  def dispatch(registry, key, mfa_or_fun, _opts \\ [])
      when is_atom(registry) and (is_function(mfa_or_fun, 1) or tuple_size(mfa_or_fun) == 3) do
    case lookup(registry, key) do
      [] -> :ok
      entries -> apply_entries(mfa_or_fun, entries)
    end

    :ok
  end

  defp apply_entries({m, f, a}, entries), do: apply(m, f, [entries | a])
  defp apply_entries(fun, entries), do: fun.(entries)

  @doc """
  Selects with a match specification over the entries, each seen as `{key, pid, value}`:
  `[{{key_pattern, pid_pattern, value_pattern}, guards, body}]`, as `Registry.select/2`.
  `:"$_"` in a body is the entry `{key, pid, value}`.
  """
  @spec select(registry(), :ets.match_spec()) :: [term()]
  def select(registry, spec) when is_atom(registry) do
    Spec.validate!(spec, "select/2")
    Spec.run(live_rows(registry, spec), spec, "select/2")
  end

  @doc "The number of entries for which the match specification's body returns `true`."
  @spec count_select(registry(), :ets.match_spec()) :: non_neg_integer()
  def count_select(registry, spec) when is_atom(registry) do
    Spec.validate!(spec, "count_select/2")
    registry |> live_rows(spec) |> Spec.run(spec, "count_select/2") |> Enum.count(&(&1 == true))
  end

  # The rows the spec's heads and guards accept, minus local processes already dead.
  defp live_rows(registry, spec) do
    rows_spec = for {head, guards, _body} <- spec, do: {head, guards, [:"$_"]}

    rows =
      try do
        :ets.select(registry, rows_spec)
      rescue
        ArgumentError ->
          if :ets.info(registry, :size) == :undefined,
            do: unknown!(registry),
            else:
              raise(
                ArgumentError,
                "invalid match specification in HordeC.Registry.select/2: #{inspect(spec)}"
              )
      end

    for {_, pid, _} = row <- rows, live?(pid), do: row
  end

  @doc "The registry's metadata `key`: `{:ok, value}` or `:error`."
  @spec meta(registry(), meta_key()) :: {:ok, meta_value()} | :error
  def meta(registry, key) when is_atom(registry) and (is_atom(key) or is_tuple(key)) do
    case safe(registry, fn -> :ets.lookup(Attachment.info_table(registry), {:meta, key}) end) do
      [{_, value}] -> {:ok, value}
      [] -> :error
    end
  end

  # ------------------------------------------------------------------ via tuples

  @doc false
  @spec register_name({registry(), key()} | {registry(), key(), value()}, pid()) :: :yes | :no
  def register_name({registry, key}, pid), do: register_name({registry, key, nil}, pid)

  def register_name({registry, key, value} = name, pid) when is_atom(registry) and is_pid(pid) do
    via_unique!(registry)

    case do_register(registry, key, value, pid, {__MODULE__, :register_name, [name, pid]}) do
      {:ok, _} -> :yes
      {:error, _} -> :no
    end
  end

  @doc false
  @spec whereis_name({registry(), key()} | {registry(), key(), value()}) :: pid() | :undefined
  def whereis_name({registry, key}), do: whereis(registry, key)
  def whereis_name({registry, key, _value}), do: whereis(registry, key)

  defp whereis(registry, key) do
    via_unique!(registry)

    case lookup(registry, key) do
      [{pid, _}] -> pid
      [] -> :undefined
    end
  end

  @doc false
  @spec unregister_name({registry(), key()} | {registry(), key(), value()}) :: :ok
  def unregister_name({registry, key}), do: unregister(registry, key)
  def unregister_name({registry, key, _value}), do: unregister(registry, key)

  @doc false
  @spec send({registry(), key()} | {registry(), key(), value()}, term()) :: term()
  def send(name, msg) do
    case whereis_name(name) do
      :undefined -> :erlang.error(:badarg, [name, msg])
      pid -> Kernel.send(pid, msg)
    end
  end

  defp via_unique!(registry) do
    unless kind!(registry) == :unique do
      raise ArgumentError, ":via is not supported for duplicate registries"
    end
  end

  # ------------------------------------------------------------------ helpers

  defp rows!(registry, key), do: safe(registry, fn -> :ets.lookup(registry, key) end)

  defp holds?(registry, :unique, key, pid), do: match?([{_, ^pid, _}], rows!(registry, key))

  defp holds?(registry, :duplicate, key, pid) do
    registry |> Mirror.pids_table() |> Mirror.indexes?(pid, key)
  end

  # A local process that is already dead is never returned, even before its registry process
  # has handled the DOWN. Remote ones go when their node's registry process reports them.
  defp live?(pid), do: node(pid) != node() or Process.alive?(pid)

  defp kind!(registry) do
    case :ets.info(registry, :type) do
      :set -> :unique
      :duplicate_bag -> :duplicate
      :undefined -> unknown!(registry)
    end
  end

  defp owner!(registry) do
    case Process.whereis(registry) do
      nil -> unknown!(registry)
      pid -> pid
    end
  end

  defp safe(registry, fun) do
    fun.()
  rescue
    ArgumentError -> unknown!(registry)
  end

  defp ok!(:ok, _fun, _request), do: :ok
  defp ok!(other, fun, request), do: refused!(other, fun, request)

  # What a replica answers when it refuses a write (docs/registry.md §4): the arguments' fault.
  defp refused!({:error, :too_big}, fun, _request) do
    raise ArgumentError,
          "HordeC.Registry.#{fun}: the key and value are too big for the registry's replicas " <>
            "(they must fit in one sync message)"
  end

  defp refused!(other, fun, request) do
    raise ArgumentError,
          "HordeC.Registry.#{fun}: the replica refused #{inspect(request, limit: 8)}: " <>
            inspect(other)
  end

  defp timeout(registry) do
    :ets.lookup_element(Attachment.info_table(registry), :timeout, 2)
  rescue
    ArgumentError -> unknown!(registry)
  end

  defp unknown!(registry), do: raise(ArgumentError, "unknown registry: #{inspect(registry)}")

  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)
end
