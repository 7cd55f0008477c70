defmodule HordeC.Mirror do
  @moduledoc """
  An exact local copy of a replica's map, kept up to date by the replica's change stream.

  Every replicated core a `hordec` node hosts (the CRDT map today) publishes a *change stream*:
  a process subscribes with `{:stream_subscribe, pid}` and then receives, as plain messages
  `{:hordec_stream, replica_name, epoch, seq, body}`, first a snapshot of the map in parts, then
  batches of diffs, numbered `seq = 1, 2, 3...` within the subscription's `epoch` (see
  `docs/protocol.md`). A mirror applies those messages to an ETS table and checks that none is
  missing; when it loses track (a gap in `seq`, a message it cannot make sense of) it asks its
  owner to subscribe again, ignores what is left of the old epoch, and converges from the fresh
  snapshot.

  A mirror is a plain struct used *inside one owner process* (a `GenServer` that hosts a client):
  the owner creates it, subscribes, and passes every stream message to `handle_message/2`:

      def init(replica) do
        mirror = HordeC.Mirror.new(replica)

        case HordeC.Mirror.subscribe(mirror) do
          {:ok, mirror} -> {:ok, %{mirror: mirror}}
          {:error, reason} -> {:stop, reason}
        end
      end

      def handle_info({:hordec_stream, _, _, _, _} = msg, %{mirror: mirror} = state) do
        case HordeC.Mirror.handle_message(mirror, msg) do
          {:ok, mirror, diffs} -> report(diffs); {:noreply, %{state | mirror: mirror}}
          {:resync, mirror} -> resubscribe(mirror, state)   # calls subscribe/1 again
          :ignore -> {:noreply, state}
        end
      end

  The owner process is the subscriber (`subscribe/1` subscribes `self()`) and owns the ETS table,
  which other processes may read concurrently (`lookup/2`, `to_map/1`) while the owner writes it.

  An owner that keeps the map in its own shape (so that it is not stored twice) passes
  `storage: :owner`: the mirror then keeps no table and only follows the stream (epochs, sequence
  numbers, snapshot parts); it hands every diff batch over as `{:ok, mirror, diffs}` and every
  complete snapshot as `{:snapshot, mirror, entries}`, and the owner replaces its map with it.

  ## What `handle_message/2` reports

  `{:ok, mirror, diffs}` with the changes just applied, in order: `{:add, key, value}` (a new key or
  a new value) and `{:remove, key}`. The snapshot that follows the *first* subscription reports
  nothing (it is the starting state, not a change). The snapshot that follows a *re*-subscription
  reports the difference between the old mirror and the new map once its last part has arrived,
  so a consumer that applies every reported diff always holds exactly the mirrored map. Until then
  the table keeps the old contents.

  ## Caveat

  A mirror notices a lost message only when a later one arrives. It does not watch the replica
  process: an owner that loses its C node or its replica (or doubts the mirror for any other
  reason) calls `subscribe/1` again.
  """

  @typedoc "A replica's address: its registered name on a `hordec` node, and that node."
  @type replica :: {atom(), node()}

  @type key :: term()
  @type value :: term()
  @type diff :: {:add, key(), value()} | {:remove, key()}

  @typedoc """
  Options of `new/2`:

    * `:storage` – `:ets` (default): the mirror keeps the map in an ETS table; `:owner`: the
      owner keeps it (see the module doc).
    * `:table` – name of the ETS table (created `:named_table`); default: an unnamed table.
    * `:timeout` – of the subscribe and unsubscribe calls (default 5000 ms).
    * `:drop_seq` – **test hook**: the mirror drops the stream message with this sequence number
      the first time it sees one (as if the network had lost it), which forces a resync.
  """
  @type option ::
          {:storage, :ets | :owner}
          | {:table, atom()}
          | {:timeout, timeout()}
          | {:drop_seq, pos_integer()}

  @typedoc "An ETS table a mirror writes, or the mirror itself."
  @type source :: t() | :ets.tab()

  @opaque t :: %__MODULE__{
            replica: replica(),
            table: :ets.tab() | nil,
            timeout: timeout(),
            drop_seq: pos_integer() | nil,
            phase: :unsubscribed | :snapshot | :live,
            epoch: pos_integer() | nil,
            seq: non_neg_integer(),
            parts: [[{key(), value()}]],
            synced_once: boolean(),
            resyncs: non_neg_integer()
          }

  @enforce_keys [:replica, :table]
  defstruct replica: nil,
            table: nil,
            timeout: 5_000,
            drop_seq: nil,
            # :unsubscribed (no stream), :snapshot (subscribed, snapshot not complete), :live
            phase: :unsubscribed,
            epoch: nil,
            # the last sequence number applied in this epoch
            seq: 0,
            # snapshot parts received so far, newest first
            parts: [],
            synced_once: false,
            resyncs: 0

  @doc """
  A new, unsubscribed mirror of `replica`, with an empty ETS table owned by the calling process
  (none with `storage: :owner`).

  Raises `ArgumentError` for a malformed replica address or an unknown or invalid option.
  """
  @spec new(replica(), [option()]) :: t()
  def new(replica, opts \\ [])

  def new({name, node} = replica, opts) when is_atom(name) and is_atom(node) do
    opts = validate_opts!(opts)
    table_opts = [:set, :protected, read_concurrency: true]

    table =
      case {Keyword.get(opts, :storage, :ets), Keyword.fetch(opts, :table)} do
        {:owner, {:ok, _}} -> raise ArgumentError, "HordeC.Mirror: :table needs storage: :ets"
        {:owner, :error} -> nil
        {:ets, {:ok, tab}} -> :ets.new(tab, [:named_table | table_opts])
        {:ets, :error} -> :ets.new(__MODULE__, table_opts)
      end

    %__MODULE__{
      replica: replica,
      table: table,
      timeout: Keyword.get(opts, :timeout, 5_000),
      drop_seq: Keyword.get(opts, :drop_seq)
    }
  end

  def new(replica, _opts) do
    raise ArgumentError,
          "expected replica to be {name, node} with two atoms, got: #{inspect(replica)}"
  end

  @doc """
  Subscribes the calling process (which must be the mirror's owner) to the replica's change
  stream, or subscribes it again: a new epoch starts with a fresh snapshot and every message of an
  earlier epoch still on its way is ignored.

  Returns `{:ok, mirror}`, or `{:error, reason}` when the replica cannot be reached or refuses
  (`:noproc`, `:noconnection`, `:timeout`, or the replica's own error reason); the mirror's table
  is left as it was.
  """
  @spec subscribe(t()) :: {:ok, t()} | {:error, term()}
  def subscribe(%__MODULE__{} = m) do
    # The snapshot parts of the new epoch arrive before this reply, so they wait in our mailbox
    # until the epoch is known here.
    case call(m, {:stream_subscribe, self()}) do
      {:ok, {:ok, epoch}} when is_integer(epoch) and epoch > 0 ->
        {:ok, %{m | phase: :snapshot, epoch: epoch, seq: 0, parts: []}}

      {:ok, {:error, reason}} ->
        {:error, reason}

      {:ok, other} ->
        {:error, {:unexpected_reply, other}}

      {:error, _} = error ->
        error
    end
  end

  @doc """
  Ends the calling process's subscription. The table keeps its contents; later stream messages are
  ignored. Returns `{:ok, mirror}` or `{:error, reason}` as `subscribe/1` does.
  """
  @spec unsubscribe(t()) :: {:ok, t()} | {:error, term()}
  def unsubscribe(%__MODULE__{} = m) do
    m = %{m | phase: :unsubscribed, epoch: nil, seq: 0, parts: []}

    case call(m, {:stream_unsubscribe, self()}) do
      {:ok, :ok} -> {:ok, m}
      {:ok, {:error, reason}} -> {:error, reason}
      {:ok, other} -> {:error, {:unexpected_reply, other}}
      {:error, _} = error -> error
    end
  end

  @doc """
  Applies one message the owner received.

    * `{:ok, mirror, diffs}` – a message of the current stream, applied; `diffs` are the changes
      it made to the mirrored map (often `[]`: a snapshot part that is not the last one, or the
      first snapshot).
    * `{:snapshot, mirror, entries}` – only with `storage: :owner`: a snapshot is complete, and
      `entries` (`[{key, value}]`) is the whole map; the owner replaces what it holds with it.
    * `{:resync, mirror}` – the mirror lost track of the stream (a gap in the sequence numbers, a
      malformed message, a snapshot or diff out of place). The owner must call `subscribe/1`; the
      table keeps the old contents until the new snapshot is complete.
    * `:ignore` – not a message of this mirror's current stream (another replica's, an earlier
      epoch's, or not a stream message at all); nothing changed.
  """
  @spec handle_message(t(), term()) ::
          {:ok, t(), [diff()]} | {:snapshot, t(), [{key(), value()}]} | {:resync, t()} | :ignore
  def handle_message(
        %__MODULE__{replica: {name, _}, epoch: epoch} = m,
        {:hordec_stream, name, epoch, seq, body}
      )
      when epoch != nil do
    cond do
      seq == m.drop_seq -> {:ok, %{m | drop_seq: nil}, []}
      seq != m.seq + 1 -> resync(m)
      true -> apply_body(%{m | seq: seq}, body)
    end
  end

  def handle_message(%__MODULE__{}, _msg), do: :ignore

  defp apply_body(%{phase: :snapshot} = m, {:snapshot, entries, more})
       when is_list(entries) and is_boolean(more) do
    if Enum.all?(entries, &match?({_, _}, &1)) do
      m = %{m | parts: [entries | m.parts]}
      if more, do: {:ok, m, []}, else: finish_snapshot(m)
    else
      resync(m)
    end
  end

  defp apply_body(%{phase: :live, table: tab} = m, {:diffs, diffs}) when is_list(diffs) do
    # Checked whole before anything is applied, so a malformed batch changes nothing.
    if Enum.all?(diffs, &valid_diff?/1) do
      if tab do
        Enum.each(diffs, fn
          {:add, key, value} -> :ets.insert(tab, {key, value})
          {:remove, key} -> :ets.delete(tab, key)
        end)
      end

      {:ok, m, diffs}
    else
      resync(m)
    end
  end

  defp apply_body(m, _body), do: resync(m)

  defp valid_diff?({:add, _key, _value}), do: true
  defp valid_diff?({:remove, _key}), do: true
  defp valid_diff?(_), do: false

  defp finish_snapshot(%{table: tab, synced_once: synced_once} = m) do
    entries = m.parts |> Enum.reverse() |> Enum.concat()
    m = %{m | phase: :live, parts: [], synced_once: true}

    # The first snapshot is the starting state; a later one (after a resync) reports what changed.
    cond do
      tab == nil -> {:snapshot, m, entries}
      synced_once -> {:ok, m, replace(tab, entries)}
      true -> first_snapshot(m, tab, entries)
    end
  end

  defp first_snapshot(m, tab, entries) do
    :ets.delete_all_objects(tab)
    :ets.insert(tab, entries)
    {:ok, m, []}
  end

  # Makes the table hold exactly `entries` and returns the diffs that took it there.
  defp replace(tab, entries) do
    new = Map.new(entries)

    removes =
      :ets.foldl(
        fn {key, _}, acc -> if Map.has_key?(new, key), do: acc, else: [{:remove, key} | acc] end,
        [],
        tab
      )

    # Values compare exactly (1 and 1.0 differ), as the replica compares them.
    adds =
      for {key, value} <- new,
          not match?([{_, ^value}], :ets.lookup(tab, key)),
          do: {:add, key, value}

    Enum.each(removes, fn {:remove, key} -> :ets.delete(tab, key) end)
    :ets.insert(tab, for({:add, k, v} <- adds, do: {k, v}))
    removes ++ adds
  end

  defp resync(m) do
    {:resync, %{m | phase: :unsubscribed, epoch: nil, seq: 0, parts: [], resyncs: m.resyncs + 1}}
  end

  # ------------------------------------------------------------------ reading

  @doc "The mirrored value of `key`: `{:ok, value}` or `:error`. Any process may call it."
  @spec lookup(source(), key()) :: {:ok, value()} | :error
  def lookup(source, key) do
    case :ets.lookup(table(source), key) do
      [{_, value}] -> {:ok, value}
      [] -> :error
    end
  end

  @doc "The whole mirrored map. Any process may call it."
  @spec to_map(source()) :: map()
  def to_map(source), do: source |> table() |> :ets.tab2list() |> Map.new()

  @doc """
  The ETS table holding the mirrored map (`{key, value}` rows, a `:set`, `:protected`). Raises
  `ArgumentError` for a mirror with `storage: :owner`.
  """
  @spec table(source()) :: :ets.tab()
  def table(%__MODULE__{table: nil}),
    do: raise(ArgumentError, "HordeC.Mirror: this mirror keeps no table (storage: :owner)")

  def table(%__MODULE__{table: tab}), do: tab
  def table(tab) when is_atom(tab) or is_reference(tab), do: tab

  @doc "The replica this mirror follows."
  @spec replica(t()) :: replica()
  def replica(%__MODULE__{replica: replica}), do: replica

  @doc "True once a snapshot has completed and the mirror follows the current stream's diffs."
  @spec synced?(t()) :: boolean()
  def synced?(%__MODULE__{phase: phase}), do: phase == :live

  @doc "The current subscription's epoch, or `nil` when not subscribed."
  @spec epoch(t()) :: pos_integer() | nil
  def epoch(%__MODULE__{epoch: epoch}), do: epoch

  @doc "How many times the mirror has lost track of its stream (each one asked for a resync)."
  @spec resyncs(t()) :: non_neg_integer()
  def resyncs(%__MODULE__{resyncs: n}), do: n

  # ------------------------------------------------------------------ internals

  defp call(%{replica: replica, timeout: timeout}, request) do
    {:ok, GenServer.call(replica, request, timeout)}
  catch
    :exit, {reason, {GenServer, :call, _}} -> {:error, exit_reason(reason)}
    :exit, reason -> {:error, exit_reason(reason)}
  end

  defp exit_reason({:nodedown, _node}), do: :noconnection
  defp exit_reason(reason), do: reason

  @known_opts [:storage, :table, :timeout, :drop_seq]

  defp validate_opts!(opts) do
    unless is_list(opts) and Enum.all?(opts, &match?({k, _} when is_atom(k), &1)) do
      raise ArgumentError,
            "expected HordeC.Mirror options to be a keyword list, got: #{inspect(opts)}"
    end

    case Keyword.keys(opts) -- @known_opts do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "unknown HordeC.Mirror options #{inspect(unknown)} (known: #{inspect(@known_opts)})"
    end

    Enum.each(opts, fn
      {:storage, storage} when storage in [:ets, :owner] ->
        :ok

      {:table, tab} when is_atom(tab) and tab != nil ->
        :ok

      {:timeout, t} when t == :infinity or (is_integer(t) and t >= 0) ->
        :ok

      {:drop_seq, n} when (is_integer(n) and n > 0) or is_nil(n) ->
        :ok

      {key, value} ->
        raise ArgumentError,
              "invalid HordeC.Mirror option #{inspect(key)}: #{inspect(value)} (expected " <>
                expected(key) <> ")"
    end)

    opts
  end

  defp expected(:storage), do: ":ets or :owner"
  defp expected(:table), do: "an atom naming the ETS table"
  defp expected(:timeout), do: "a timeout: :infinity or a non-negative integer"
  defp expected(:drop_seq), do: "a positive integer"
end
