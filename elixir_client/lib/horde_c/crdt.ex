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

  Options of `start_link/1`:

    * `:name` (required) – the local registered name, and by default the replica's name.
    * `:hordec` (required) – the `hordec` node hosting the replica this process attaches to.
    * `:replica` – the replica's registered name on the C node, if it differs from `:name`.
    * `:on_diffs` – `fun(diffs)` or `{m, f, a}` called (in the local process) with
      `[{:add, key, value} | {:remove, key}]` whenever the attached replica's map changes.
    * `:sync_interval` – milliseconds over which local writes are batched before they are
      shipped (default 5). Only used when this call creates the replica.
    * `:max_message_bytes` – cap on every sync message (default 1 MiB). Only used on creation;
      all replicas of a map must agree on it.

  If the `hordec` node goes down the local process exits with `{:hordec_down, node}`, so a
  supervisor can restart it once the node is back.
  """

  use GenServer

  @type crdt :: atom()
  @type key :: term()
  @type value :: term()
  @type diff :: {:add, key(), value()} | {:remove, key()}

  @default_timeout 5_000

  # ------------------------------------------------------------------ lifecycle

  @doc "A child spec, so the map can sit in a supervision tree (`id` is the name)."
  def child_spec(opts) do
    %{id: Keyword.fetch!(opts, :name), start: {__MODULE__, :start_link, [opts]}}
  end

  @doc "Starts the local process and attaches it to (or creates) the replica. See the module doc."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    name = Keyword.fetch!(opts, :name)

    unless is_atom(name),
      do: raise(ArgumentError, "expected :name to be an atom, got: #{inspect(name)}")

    hordec = Keyword.fetch!(opts, :hordec)

    unless is_atom(hordec),
      do: raise(ArgumentError, "expected :hordec to be a node name, got: #{inspect(hordec)}")

    GenServer.start_link(__MODULE__, opts, name: name)
  end

  # ------------------------------------------------------------------ the API (DeltaCrdt's shape)

  @doc "Sets the neighbours of the attached replica: `[{replica_name, hordec_node}]`."
  @spec set_neighbours(crdt(), [{atom(), node()}]) :: :ok
  def set_neighbours(crdt, neighbours) when is_list(neighbours) do
    :ok = replica_call(crdt, {:set_neighbours, neighbours}, @default_timeout, "set_neighbours")
  end

  @doc "Puts `key => value`. Returns `crdt` (so calls can be piped), like `DeltaCrdt.put/4`."
  @spec put(crdt(), key(), value(), timeout()) :: crdt()
  def put(crdt, key, value, timeout \\ @default_timeout) do
    :ok = replica_call(crdt, {:put, key, value}, timeout, "put")
    crdt
  end

  @doc "Deletes `key`. Returns `crdt`."
  @spec delete(crdt(), key(), timeout()) :: crdt()
  def delete(crdt, key, timeout \\ @default_timeout) do
    :ok = replica_call(crdt, {:delete, key}, timeout, "delete")
    crdt
  end

  @doc "The value of `key`, or `nil`."
  @spec get(crdt(), key(), timeout()) :: value() | nil
  def get(crdt, key, timeout \\ @default_timeout) do
    case replica_call(crdt, {:get, key}, timeout, "get") do
      {:ok, value} -> value
      :error -> nil
    end
  end

  @doc "A map of the given keys that are present."
  @spec take(crdt(), [key()], timeout()) :: map()
  def take(crdt, keys, timeout \\ @default_timeout) when is_list(keys) do
    replica_call(crdt, {:take, keys}, timeout, "take")
  end

  @doc "The whole map held by the attached replica."
  @spec to_map(crdt(), timeout()) :: map()
  def to_map(crdt, timeout \\ @default_timeout),
    do: replica_call(crdt, :to_map, timeout, "to_map")

  @doc "Puts every entry of `map` in one batch. Returns `crdt`."
  @spec merge(crdt(), map(), timeout()) :: crdt()
  def merge(crdt, map, timeout \\ @default_timeout) when is_map(map) do
    :ok = replica_call(crdt, {:merge, map}, timeout, "merge")
    crdt
  end

  @doc "Deletes every key of `keys` in one batch. Returns `crdt`."
  @spec drop(crdt(), [key()], timeout()) :: crdt()
  def drop(crdt, keys, timeout \\ @default_timeout) when is_list(keys) do
    :ok = replica_call(crdt, {:drop, keys}, timeout, "drop")
    crdt
  end

  @doc """
  Counters of the attached replica: keys, elements, bytes and messages sent and received,
  messages rejected, repairs completed, and whether it is idle (nothing left to ship).
  """
  @spec stats(crdt(), timeout()) :: map()
  def stats(crdt, timeout \\ @default_timeout), do: replica_call(crdt, :stats, timeout, "stats")

  @doc "The `{replica_name, hordec_node}` this local process is attached to."
  @spec replica(crdt()) :: {atom(), node()}
  def replica(crdt), do: lookup(crdt)

  defp replica_call(crdt, request, timeout, what) do
    case GenServer.call(lookup(crdt), request, timeout) do
      {:error, :too_big} ->
        raise ArgumentError,
              "HordeC.Crdt.#{what}: the key and value do not fit in one sync message " <>
                "(see the :max_message_bytes option)"

      {:error, :badarg} ->
        raise ArgumentError,
              "HordeC.Crdt.#{what}: invalid arguments #{inspect(request, limit: 5)}"

      {:error, reason} ->
        raise RuntimeError, "HordeC.Crdt.#{what} failed: #{inspect(reason)}"

      reply ->
        reply
    end
  end

  # The replica's address lives in a per-name persistent_term written once at start, so every call
  # goes straight to the C node instead of hopping through the local process.
  defp lookup(crdt) when is_atom(crdt) do
    :persistent_term.get({__MODULE__, crdt})
  rescue
    ArgumentError -> exit({:noproc, {__MODULE__, crdt}})
  end

  # ------------------------------------------------------------------ the local process

  @impl true
  def init(opts) do
    name = Keyword.fetch!(opts, :name)
    hordec = Keyword.fetch!(opts, :hordec)
    replica = Keyword.get(opts, :replica, name)

    replica_opts =
      [flush_interval_ms: opts[:sync_interval], max_message_bytes: opts[:max_message_bytes]]
      |> Enum.reject(fn {_, v} -> is_nil(v) end)

    with true <- Node.connect(hordec) || {:error, {:cannot_connect, hordec}},
         {:ok, _pid} <- GenServer.call({:hordec, hordec}, {:crdt_start, replica, replica_opts}) do
      Node.monitor(hordec, true)
      :persistent_term.put({__MODULE__, name}, {replica, hordec})
      on_diffs = opts[:on_diffs]
      if on_diffs, do: {:ok, _epoch} = GenServer.call({replica, hordec}, {:stream_subscribe, self()})
      {:ok, %{name: name, replica: {replica, hordec}, on_diffs: on_diffs}}
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  @impl true
  # The change stream: the snapshot part is what the replica held when we subscribed (not a change);
  # diff batches are reported as they come.
  def handle_info({:hordec_stream, _replica, _epoch, _seq, {:snapshot, _entries, _more}}, state),
    do: {:noreply, state}

  def handle_info({:hordec_stream, _replica, _epoch, _seq, {:diffs, diffs}}, state) do
    case state.on_diffs do
      fun when is_function(fun, 1) -> fun.(diffs)
      {m, f, a} -> apply(m, f, a ++ [diffs])
      nil -> :ok
    end

    {:noreply, state}
  end

  def handle_info({:nodedown, node}, %{replica: {_, node}} = state) do
    {:stop, {:hordec_down, node}, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    :persistent_term.erase({__MODULE__, state.name})
    :ok
  end
end
