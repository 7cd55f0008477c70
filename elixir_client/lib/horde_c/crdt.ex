defmodule HordeC.Crdt do
  @moduledoc """
  A replicated key-value map held by `hordec` C nodes, with `DeltaCrdt`'s API shape.

  Each `hordec` node can host a replica of a map, identified by a registered name. Replicas of
  the same map on different C nodes synchronise with each other over Erlang distribution: an
  add-wins map whose values are last-writer-wins under hybrid logical clocks, so "the latest
  write" means the latest across nodes.

  `start_link/1` starts a small local process registered under `:name` and attaches it to the
  replica on one `hordec` node (creating the replica there if it does not exist yet):

      {:ok, _} = HordeC.Crdt.start_link(name: :m, hordec: :"h1@127.0.0.1")
      :ok = HordeC.Crdt.set_neighbours(:m, [{:m, :"h2@127.0.0.1"}, {:m, :"h3@127.0.0.1"}])
      HordeC.Crdt.put(:m, :key, "value")
      HordeC.Crdt.get(:m, :key)   #=> "value"

  Writes return once the attached replica has applied them; reads reflect that replica. Other
  replicas see a write after it has been shipped (milliseconds on a healthy network); replicas
  cut off by a partition catch up, deletes and overwrites included, when it heals.

  Keys and values are any Erlang terms; key identity is the term's external format, so keys
  compare with `===` (`1` and `1.0` are different keys). A value larger than the replica's
  maximum message size (1 MiB by default) is refused with an `ArgumentError` — never truncated.

  The local process needs the `:horde_c` application (started automatically when `:horde_c` is a
  dependency) and a distributed local node (`--name`/`--sname`, or `Node.start/2`).

  ## Errors

  The same convention holds for every function of this module:

    * a bad argument (not an atom name, keys not a list, a value too big for one sync message,
      a request the replica rejects as malformed) raises `ArgumentError` saying which argument
      and what was expected;
    * a `crdt` name with no local process behind it exits with
      `{:noproc, {HordeC.Crdt, function, [crdt]}}`, as `GenServer.call/3` does for a missing name;
    * a replica that cannot be reached exits as `GenServer.call/3` does: `{:noproc, _}` (the
      replica no longer runs on its C node), `{{:nodedown, node}, _}`, `{:timeout, _}`;
    * any other failure the C node reports exits with `{{:hordec_error, reason},
      {HordeC.Crdt, function, [crdt]}}`, and a reply of an unexpected shape with
      `{{:unexpected_reply, reply}, {HordeC.Crdt, function, [crdt]}}`.

  Nothing here returns `{:error, reason}` except `start_link/1`.

  ## Change notifications

  With `:on_diffs` the local process mirrors the replica's map through its change stream (see
  `HordeC.Mirror`) and calls the callback with exactly the changes: what was there when the process
  started is not reported; if a stream message is lost the mirror resubscribes, and the callback
  gets the difference between what it was told and the replica's map.
  """

  use GenServer

  alias HordeC.{Clients, Mirror}

  @type crdt :: atom()
  @type key :: term()
  @type value :: term()
  @type diff :: {:add, key(), value()} | {:remove, key()}

  @typedoc "A function or `{module, function, extra_args}` called with a list of `t:diff/0`."
  @type on_diffs :: ([diff()] -> any()) | {module(), atom(), list()}

  @typedoc """
  Options of `start_link/1` and `child_spec/1`:

    * `:name` (required) – the local registered name, and by default the replica's name.
    * `:hordec` – the `hordec` node hosting the replica this process attaches to; `:local` is
      this node's `HordeC.Daemon`, whose discovery then sets the replicas on the other BEAM nodes'
      daemons as neighbours. Default: `config :horde_c, :hordec` (its first node if a list).
    * `:replica` – the replica's registered name on the C node, if it differs from `:name`.
    * `:on_diffs` – `fun(diffs)` or `{m, f, a}` (called as `apply(m, f, a ++ [diffs])`) in the
      local process with `[{:add, key, value} | {:remove, key}]` whenever the attached replica's
      map changes.
    * `:sync_interval` – milliseconds (1..60000) over which local writes are batched before they
      are shipped (default 5).
    * `:max_message_bytes` – cap on every sync message (4096..2^30, default 1 MiB); all replicas
      of a map must agree on it.
    * `:stream_batch_bytes` – cap on the payload of one change-stream message (256..2^30, default
      65536).
    * `:max_clock_offset` – milliseconds: a sync message stamped further ahead of the C node's
      clock is rejected (default: the daemon's `--max-clock-offset-ms`, 60 s; docs/crdt.md,
      "Clocks").

  The last four are only used when this call creates the replica.
  """
  @type start_option ::
          {:name, atom()}
          | {:hordec, node() | :local}
          | {:replica, atom()}
          | {:on_diffs, on_diffs()}
          | {:sync_interval, pos_integer()}
          | {:max_message_bytes, pos_integer()}
          | {:stream_batch_bytes, pos_integer()}
          | {:max_clock_offset, pos_integer()}

  @default_timeout 5_000

  # ------------------------------------------------------------------ lifecycle

  @doc """
  A child spec, so the map can sit in a supervision tree (`id` is the name). Validates the
  options like `start_link/1`.
  """
  @spec child_spec([start_option()]) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts = validate_start_opts!(opts)
    %{id: Keyword.fetch!(opts, :name), start: {__MODULE__, :start_link, [opts]}}
  end

  @doc """
  Starts the local process and attaches it to (or creates) the replica. See `t:start_option/0`.

  Raises `ArgumentError` for a missing, unknown or invalid option. Returns `{:error, reason}`
  (and, as every `start_link`, exits the caller with `reason` unless it traps exits) when:

    * `:not_alive` – the local node is not distributed, so it cannot reach a C node;
    * `{:cannot_connect, hordec}` – the C node could not be reached;
    * `{:application_not_started, :horde_c}` – the `:horde_c` application is not running;
    * `:name_taken` – another kind of process holds the replica's name on the C node;
    * `{:stream_subscribe, reason}` – (with `:on_diffs`) the change stream could not be
      subscribed;
    * any other reason the C node's control process gives (`:noproc`, `:timeout`, ...).

  If the `hordec` node goes down later, the local process exits with `{:hordec_down, node}`, so
  a supervisor can restart it once the node is back.
  """
  @spec start_link([start_option()]) :: GenServer.on_start()
  def start_link(opts) do
    opts = validate_start_opts!(opts)
    GenServer.start_link(__MODULE__, opts, name: Keyword.fetch!(opts, :name))
  end

  # ------------------------------------------------------------------ the API (DeltaCrdt's shape)

  @doc """
  Sets the neighbours of the attached replica: `[{replica_name, hordec_node}]` (the replica itself
  may be listed; it is skipped). Returns `:ok`. See the module doc for errors.
  """
  @spec set_neighbours(crdt(), [{atom(), node()}]) :: :ok
  def set_neighbours(crdt, neighbours) do
    unless is_list(neighbours) and
             Enum.all?(neighbours, &match?({n, h} when is_atom(n) and is_atom(h), &1)) do
      raise ArgumentError,
            "HordeC.Crdt.set_neighbours: expected neighbours to be a list of " <>
              "{replica_name, hordec_node} atom pairs, got: #{inspect(neighbours)}"
    end

    expect(:ok, crdt, {:set_neighbours, neighbours}, @default_timeout, :set_neighbours)
  end

  @doc "Puts `key => value`. Returns `crdt` (so calls can be piped), like `DeltaCrdt.put/4`."
  @spec put(crdt(), key(), value(), timeout()) :: crdt()
  def put(crdt, key, value, timeout \\ @default_timeout) do
    mutate(crdt, {:put, key, value}, timeout, :put)
    crdt
  end

  @doc "Deletes `key`. Returns `crdt`."
  @spec delete(crdt(), key(), timeout()) :: crdt()
  def delete(crdt, key, timeout \\ @default_timeout) do
    mutate(crdt, {:delete, key}, timeout, :delete)
    crdt
  end

  @doc "The value of `key`, or `nil`."
  @spec get(crdt(), key(), timeout()) :: value() | nil
  def get(crdt, key, timeout \\ @default_timeout) do
    case replica_call(crdt, {:get, key}, timeout, :get) do
      {:ok, value} -> value
      :error -> nil
      other -> unexpected(other, crdt, :get)
    end
  end

  @doc "A map of the given keys that are present."
  @spec take(crdt(), [key()], timeout()) :: map()
  def take(crdt, keys, timeout \\ @default_timeout) do
    list!(keys, :take, "keys")
    expect_map(crdt, {:take, keys}, timeout, :take)
  end

  @doc "The whole map held by the attached replica."
  @spec to_map(crdt(), timeout()) :: map()
  def to_map(crdt, timeout \\ @default_timeout),
    do: expect_map(crdt, :to_map, timeout, :to_map)

  @doc "Puts every entry of `map` in one batch. Returns `crdt`."
  @spec merge(crdt(), map(), timeout()) :: crdt()
  def merge(crdt, map, timeout \\ @default_timeout) do
    unless is_map(map),
      do: raise(ArgumentError, "HordeC.Crdt.merge: expected a map, got: #{inspect(map)}")

    mutate(crdt, {:merge, map}, timeout, :merge)
    crdt
  end

  @doc "Deletes every key of `keys` in one batch. Returns `crdt`."
  @spec drop(crdt(), [key()], timeout()) :: crdt()
  def drop(crdt, keys, timeout \\ @default_timeout) do
    list!(keys, :drop, "keys")
    mutate(crdt, {:drop, keys}, timeout, :drop)
    crdt
  end

  @doc """
  Counters of the attached replica: keys, elements, bytes and messages sent and received,
  messages rejected, repairs completed, and whether it is idle (nothing left to ship).
  """
  @spec stats(crdt(), timeout()) :: map()
  def stats(crdt, timeout \\ @default_timeout), do: expect_map(crdt, :stats, timeout, :stats)

  @doc """
  The `{replica_name, hordec_node}` this local process is attached to. Exits with
  `{:noproc, {HordeC.Crdt, :replica, [crdt]}}` if no such local process runs.
  """
  @spec replica(crdt()) :: {atom(), node()}
  def replica(crdt), do: lookup(crdt, :replica)

  # A write, inside a [:horde_c, :crdt, :mutate] telemetry span (HordeC.Telemetry).
  defp mutate(crdt, request, timeout, op) do
    HordeC.Telemetry.span([:horde_c, :crdt, :mutate], %{crdt: crdt, op: op}, fn ->
      {expect(:ok, crdt, request, timeout, op), %{}}
    end)
  end

  defp expect(expected, crdt, request, timeout, what) do
    case replica_call(crdt, request, timeout, what) do
      ^expected -> expected
      other -> unexpected(other, crdt, what)
    end
  end

  defp expect_map(crdt, request, timeout, what) do
    case replica_call(crdt, request, timeout, what) do
      %{} = map -> map
      other -> unexpected(other, crdt, what)
    end
  end

  defp unexpected(reply, crdt, what),
    do: exit({{:unexpected_reply, reply}, {__MODULE__, what, [crdt]}})

  # Calls go straight from the caller to the replica on the C node (no hop through the local
  # process); GenServer.call's own exits (noproc, nodedown, timeout) pass through unchanged.
  defp replica_call(crdt, request, timeout, what) do
    unless timeout == :infinity or (is_integer(timeout) and timeout >= 0) do
      raise ArgumentError,
            "HordeC.Crdt.#{what}: expected timeout to be :infinity or a non-negative integer, " <>
              "got: #{inspect(timeout)}"
    end

    case GenServer.call(lookup(crdt, what), request, timeout) do
      {:error, :too_big} ->
        raise ArgumentError,
              "HordeC.Crdt.#{what}: the key and value do not fit in one sync message " <>
                "(see the :max_message_bytes option)"

      {:error, {:too_deep, limit}} ->
        raise ArgumentError,
              "HordeC.Crdt.#{what}: a key or value nests more than #{limit} levels of " <>
                "tuples, lists and maps, the most a replica stores"

      {:error, :badarg} ->
        raise ArgumentError,
              "HordeC.Crdt.#{what}: the replica rejected the arguments as malformed: " <>
                inspect(request, limit: 5, printable_limit: 100)

      {:error, reason} ->
        exit({{:hordec_error, reason}, {__MODULE__, what, [crdt]}})

      reply ->
        reply
    end
  end

  # The replica's address, written once by the local process when it attached (HordeC.Clients).
  defp lookup(crdt, what) when is_atom(crdt) do
    case Clients.fetch(__MODULE__, crdt) do
      {:ok, replica} -> replica
      :error -> exit({:noproc, {__MODULE__, what, [crdt]}})
    end
  end

  defp lookup(crdt, what) do
    raise ArgumentError,
          "HordeC.Crdt.#{what}: expected crdt to be the atom name of a HordeC.Crdt process, " <>
            "got: #{inspect(crdt)}"
  end

  defp list!(value, _what, _arg) when is_list(value), do: :ok

  defp list!(value, what, arg) do
    raise ArgumentError,
          "HordeC.Crdt.#{what}: expected #{arg} to be a list, got: #{inspect(value)}"
  end

  # ------------------------------------------------------------------ options

  @start_opts [
    :name,
    :hordec,
    :replica,
    :on_diffs,
    :sync_interval,
    :max_message_bytes,
    :stream_batch_bytes,
    :max_clock_offset
  ]

  # The ranges the C node accepts (it answers anything else as an unknown request).
  @ranges [
    sync_interval: 1..60_000,
    max_message_bytes: 4096..1_073_741_824,
    stream_batch_bytes: 256..1_073_741_824,
    max_clock_offset: 1..1_099_511_627_776
  ]

  defp validate_start_opts!(opts) do
    unless is_list(opts) and Enum.all?(opts, &match?({k, _} when is_atom(k), &1)) do
      raise ArgumentError,
            "HordeC.Crdt: expected options to be a keyword list, got: #{inspect(opts)}"
    end

    case Keyword.keys(opts) -- @start_opts do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "HordeC.Crdt: unknown options #{inspect(Enum.uniq(unknown))} " <>
                "(known: #{inspect(@start_opts)})"
    end

    # No :hordec: config :horde_c, :hordec (a list's first node: a map attaches to one).
    opts =
      case {Keyword.fetch(opts, :hordec), Application.get_env(:horde_c, :hordec)} do
        {{:ok, _}, _} -> opts
        {:error, nil} -> opts
        {:error, [first | _]} -> Keyword.put(opts, :hordec, first)
        {:error, hordec} -> Keyword.put(opts, :hordec, hordec)
      end

    for key <- [:name, :hordec], not Keyword.has_key?(opts, key) do
      raise ArgumentError,
            "HordeC.Crdt: the #{inspect(key)} option is required" <>
              if(key == :hordec, do: " (or config :horde_c, :hordec)", else: "")
    end

    Enum.each(opts, &validate_opt!/1)
    opts
  end

  defp validate_opt!({key, value}) when key in [:name, :hordec, :replica] do
    unless is_atom(value) and value != nil do
      raise ArgumentError,
            "HordeC.Crdt: expected #{inspect(key)} to be #{expected(key)}, got: #{inspect(value)}"
    end
  end

  defp validate_opt!({:on_diffs, fun}) when is_function(fun, 1), do: :ok

  defp validate_opt!({:on_diffs, {m, f, a}}) when is_atom(m) and is_atom(f) and is_list(a),
    do: :ok

  defp validate_opt!({:on_diffs, other}) do
    raise ArgumentError,
          "HordeC.Crdt: expected :on_diffs to be a 1-arity function or {module, function, args}, " <>
            "got: #{inspect(other)}"
  end

  defp validate_opt!({key, value}) do
    range = Keyword.fetch!(@ranges, key)

    unless is_integer(value) and value in range do
      raise ArgumentError,
            "HordeC.Crdt: expected #{inspect(key)} to be an integer in #{inspect(range)}, " <>
              "got: #{inspect(value)}"
    end
  end

  defp expected(:name), do: "an atom (the local registered name)"
  defp expected(:hordec), do: "a node name (an atom) or :local"
  defp expected(:replica), do: "an atom (the replica's registered name on the C node)"

  # ------------------------------------------------------------------ the local process

  @impl true
  def init(opts) do
    name = Keyword.fetch!(opts, :name)
    # :local is this node's HordeC.Daemon (resolved now: the daemon started before us).
    {hordec, local?} = HordeC.Daemon.resolve(Keyword.fetch!(opts, :hordec))
    replica = Keyword.get(opts, :replica, name)

    replica_opts =
      for {opt, c_opt} <- [
            sync_interval: :flush_interval_ms,
            max_message_bytes: :max_message_bytes,
            stream_batch_bytes: :stream_batch_bytes,
            max_clock_offset: :max_clock_offset_ms
          ],
          Keyword.has_key?(opts, opt),
          do: {c_opt, opts[opt]}

    # Trapping exits makes a supervisor's shutdown run terminate/2, which removes this name's row
    # at once (a kill is cleaned up by the table's owner, a moment later).
    Process.flag(:trap_exit, true)

    with :ok <- connect(hordec),
         :ok <- start_replica(hordec, replica, replica_opts),
         :ok <- Clients.put(__MODULE__, name, {replica, hordec}) |> app_started(),
         {:ok, mirror} <- mirror(opts[:on_diffs], {replica, hordec}) do
      Node.monitor(hordec, true)
      # The daemon sets the replicas of the daemons it discovers as this map's neighbours.
      if local?, do: HordeC.Daemon.join(:crdt, name)
      {:ok, %{name: name, replica: {replica, hordec}, on_diffs: opts[:on_diffs], mirror: mirror}}
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  # Node.connect/1 answers :ignored when the local node is not alive (not distributed).
  defp connect(hordec) do
    case Node.connect(hordec) do
      true -> :ok
      false -> {:error, {:cannot_connect, hordec}}
      :ignored -> {:error, :not_alive}
    end
  end

  defp start_replica(hordec, replica, replica_opts) do
    case HordeC.Node.call(hordec, {:crdt_start, replica, replica_opts}) do
      {:ok, {:ok, _pid}} -> :ok
      {:ok, {:error, reason}} -> {:error, reason}
      {:ok, other} -> {:error, {:unexpected_reply, other}}
      {:error, :noconnection} -> {:error, {:cannot_connect, hordec}}
      {:error, reason} -> {:error, reason}
    end
  end

  defp app_started(:ok), do: :ok
  defp app_started({:error, :not_started}), do: {:error, {:application_not_started, :horde_c}}

  defp mirror(nil, _replica), do: {:ok, nil}

  defp mirror(_on_diffs, replica) do
    case Mirror.subscribe(Mirror.new(replica)) do
      {:ok, mirror} -> {:ok, mirror}
      {:error, reason} -> {:error, {:stream_subscribe, reason}}
    end
  end

  @impl true
  def handle_info({:hordec_stream, _, _, _, _} = msg, %{mirror: %Mirror{} = mirror} = state) do
    case Mirror.handle_message(mirror, msg) do
      {:ok, mirror, diffs} ->
        report(state.on_diffs, diffs)
        {:noreply, %{state | mirror: mirror}}

      {:resync, mirror} ->
        case Mirror.subscribe(mirror) do
          {:ok, mirror} -> {:noreply, %{state | mirror: mirror}}
          {:error, :noconnection} -> {:stop, {:hordec_down, elem(state.replica, 1)}, state}
          {:error, reason} -> {:stop, {:stream_subscribe, reason}, state}
        end

      :ignore ->
        {:noreply, state}
    end
  end

  def handle_info({:nodedown, node}, %{replica: {_, node}} = state) do
    {:stop, {:hordec_down, node}, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp report(_on_diffs, []), do: :ok
  defp report(fun, diffs) when is_function(fun, 1), do: fun.(diffs)
  defp report({m, f, a}, diffs), do: apply(m, f, a ++ [diffs])

  @impl true
  def terminate(_reason, state) do
    Clients.delete(__MODULE__, state.name)
  end
end
