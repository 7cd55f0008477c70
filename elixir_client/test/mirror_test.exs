defmodule HordeC.MirrorTest do
  @moduledoc """
  `HordeC.Mirror` against the change stream of real CRDT replicas on real hordec nodes: the mirror
  ends equal to the replica, large snapshots arrive in parts, a lost message (the `:drop_seq`
  hook) is noticed by its sequence number and repaired by a resubscription, and no stream message
  carries more than the replica's `stream_batch_bytes` (unless one entry alone is larger).

  The test process itself is the mirror's owner: it subscribes, and feeds the mirror every stream
  message it receives. No waiting on time is needed: a replica sends the diffs caused by a request
  before its reply, and the snapshot of a subscription before the `{:ok, epoch}` reply, all to this
  process over one connection, so once a call has returned, everything it caused is already in
  the mailbox and `drain/2` (receive ... after 0) sees all of it.
  """
  use HordeC.InteropCase, async: true

  alias HordeC.{Crdt, Mirror}

  @default_batch 65_536
  # An encoded payload list costs its items plus a version byte, a list header and a nil.
  @slack 16

  # Feeds every stream message already in the mailbox to the mirror, resubscribing whenever it
  # asks to. Returns the mirror and a log of what happened.
  defp drain(m, log \\ new_log()) do
    receive do
      {:hordec_stream, _, _, _, _} = msg ->
        log = %{log | messages: [msg | log.messages]}

        case Mirror.handle_message(m, msg) do
          {:ok, m, diffs} ->
            drain(m, %{log | diffs: log.diffs ++ diffs})

          {:snapshot, m, entries} ->
            drain(m, %{log | snapshots: [entries | log.snapshots]})

          {:resync, m} ->
            assert {:ok, m} = Mirror.subscribe(m)
            drain(m, %{log | resyncs: log.resyncs + 1})

          :ignore ->
            drain(m, %{log | ignored: log.ignored + 1})
        end
    after
      0 ->
        {m, %{log | messages: Enum.reverse(log.messages), snapshots: Enum.reverse(log.snapshots)}}
    end
  end

  defp new_log, do: %{messages: [], diffs: [], snapshots: [], resyncs: 0, ignored: 0}

  # What a consumer that applies every reported diff to `map` holds.
  defp apply_diffs(map, diffs) do
    Enum.reduce(diffs, map, fn
      {:add, k, v}, acc -> Map.put(acc, k, v)
      {:remove, k}, acc -> Map.delete(acc, k)
    end)
  end

  defp subscribed(crdt, opts \\ []) do
    assert {:ok, m} = crdt |> Crdt.replica() |> Mirror.new(opts) |> Mirror.subscribe()
    assert Mirror.epoch(m) > 0
    m
  end

  defp attach(h, opts \\ []) do
    name = :"mirror_crdt_#{System.unique_integer([:positive])}"
    start_supervised!({Crdt, [name: name, hordec: h.node] ++ opts}, id: name)
    name
  end

  # Every stream message's payload is within `bound` (+ the list's own framing), unless it holds a
  # single entry.
  defp assert_bounded(messages, bound) do
    for {:hordec_stream, _, _, seq, body} <- messages do
      payload =
        case body do
          {:snapshot, entries, _more} -> entries
          {:diffs, diffs} -> diffs
        end

      # :erlang.external_size/2, with UTF-8 atoms as hordec encodes them (OTP 25's external_size
      # does not take minor_version 2 yet).
      size = byte_size(:erlang.term_to_binary(payload, minor_version: 2))

      if length(payload) > 1 do
        assert size <= bound + @slack,
               "message #{seq}: #{length(payload)} entries, #{size} bytes, bound #{bound}"
      end
    end
  end

  defp kinds(messages), do: Enum.map(messages, fn {:hordec_stream, _, _, _, b} -> elem(b, 0) end)

  test "a mirror follows many writes and deletes on two replicas and ends equal to the replica" do
    [h1, h2] = start_hordecs(2)
    replica = :"m_#{System.unique_integer([:positive])}"
    l1 = attach(h1, replica: replica)
    l2 = attach(h2, replica: replica)
    for l <- [l1, l2], do: :ok = Crdt.set_neighbours(l, [{replica, h1.node}, {replica, h2.node}])

    Crdt.merge(l1, Map.new(1..50, &{&1, {:before, &1}}))
    m = subscribed(l1)
    {m, log} = drain(m)
    assert Mirror.synced?(m)
    assert log.diffs == [], "the first snapshot is the starting state, not a change"
    start = Mirror.to_map(m)
    assert start == Crdt.to_map(l1)

    for i <- 1..300 do
      case rem(i, 5) do
        0 -> Crdt.delete(l1, div(i, 5))
        1 -> Crdt.put(l2, {:remote, i}, i)
        2 -> Crdt.merge(l1, %{{:batch, i} => i, {:batch, i + 1} => [i]})
        3 -> Crdt.drop(l2, [{:remote, i - 2}, {:batch, i - 1}])
        4 -> Crdt.put(l1, rem(i, 7), %{v: i})
      end
    end

    eventually(fn -> Crdt.to_map(l1) == Crdt.to_map(l2) end, 10_000)
    # the replica's reply to this to_map follows every diff it sent before
    expected = Crdt.to_map(l1)
    {m, log} = drain(m, log)
    assert Mirror.to_map(m) == expected
    assert apply_diffs(start, log.diffs) == expected, "the reported diffs are exactly the changes"
    assert log.resyncs == 0 and Mirror.resyncs(m) == 0
    for {k, v} <- Enum.take(expected, 10), do: assert(Mirror.lookup(m, k) == {:ok, v})
    assert Mirror.lookup(m, :missing) == :error

    # the table is readable by any process
    assert Task.async(fn -> Mirror.to_map(m) end) |> Task.await() == expected

    # a deleted key's diff is {:remove, key}; values compare exactly (1 vs 1.0)
    Crdt.put(l1, :exact, 1) |> Crdt.put(:exact, 1.0) |> Crdt.delete(:exact)
    {m, log} = drain(m, new_log())
    assert log.diffs == [{:add, :exact, 1}, {:add, :exact, 1.0}, {:remove, :exact}]
    assert Mirror.lookup(m, :exact) == :error
  end

  test "a large map (5,000 keys of 1 KB) arrives as a snapshot in bounded parts and mirrors exactly" do
    h = start_hordec()
    l = attach(h)

    for chunk <- Enum.chunk_every(1..5_000, 500) do
      Crdt.merge(l, Map.new(chunk, &{{:k, &1}, :crypto.strong_rand_bytes(1_024)}))
    end

    m = subscribed(l)
    {m, log} = drain(m)
    assert Mirror.synced?(m)
    parts = for {:hordec_stream, _, _, _, {:snapshot, _, more}} <- log.messages, do: more
    assert length(parts) >= div(5_000 * 1_024, @default_batch)
    assert List.last(parts) == false and Enum.all?(Enum.drop(parts, -1), & &1)
    assert_bounded(log.messages, @default_batch)

    seqs = for {:hordec_stream, _, _, seq, _} <- log.messages, do: seq
    assert seqs == Enum.to_list(1..length(seqs))
    assert Mirror.to_map(m) == Crdt.to_map(l)
    assert :ets.info(Mirror.table(m), :size) == 5_000
  end

  test "a dropped diff batch: the gap is noticed, the mirror resubscribes and reports what it missed" do
    h = start_hordec()
    l = attach(h)
    Crdt.merge(l, %{a: 1, b: 2, c: 3})

    # seq 1 is the (one-part) snapshot; every put below is one diff batch: 2, 3, 4...
    m = subscribed(l, drop_seq: 3)
    epoch = Mirror.epoch(m)
    {m, log} = drain(m)
    start = Mirror.to_map(m)
    assert start == %{a: 1, b: 2, c: 3}

    Crdt.put(l, :a, 10)
    Crdt.put(l, :b, 20) |> Crdt.delete(:c)
    {m, log} = drain(m, log)
    # seq 3 ({:add, :b, 20}) was dropped; seq 4 ({:remove, :c}) revealed the gap
    assert log.resyncs == 1 and Mirror.resyncs(m) == 1
    assert Mirror.epoch(m) != epoch
    assert Mirror.synced?(m)
    # before the gap, the batch as it came; then what the resync's snapshot changed (any order)
    assert [{:add, :a, 10} | repaired] = log.diffs
    assert Enum.sort(repaired) == Enum.sort([{:add, :b, 20}, {:remove, :c}])
    assert Mirror.to_map(m) == Crdt.to_map(l)
    assert apply_diffs(start, log.diffs) == Crdt.to_map(l)

    # and it goes on following the new epoch
    Crdt.put(l, :d, 4)
    {m, log2} = drain(m)
    assert log2.diffs == [{:add, :d, 4}]
    assert Mirror.to_map(m) == %{a: 10, b: 20, d: 4}
  end

  test "a dropped snapshot part: the rest of the old epoch is ignored and the mirror converges" do
    h = start_hordec()
    l = attach(h, stream_batch_bytes: 1_024)
    Crdt.merge(l, Map.new(1..200, &{&1, :binary.copy("v", 40)}))

    m = subscribed(l, drop_seq: 2)
    {m, log} = drain(m)
    assert log.resyncs == 1
    assert log.ignored > 0, "the old epoch's remaining parts are ignored"
    assert log.diffs == [], "nothing was reported before: the repaired snapshot is the start"
    assert Mirror.synced?(m)
    assert Mirror.to_map(m) == Crdt.to_map(l)
  end

  test "no stream message exceeds stream_batch_bytes, except a single entry larger than it" do
    bound = 1_024
    h = start_hordec()
    l = attach(h, stream_batch_bytes: bound)
    Crdt.merge(l, Map.new(1..100, &{{:pre, &1}, :binary.copy("p", &1)}))
    m = subscribed(l)

    # one request, many small changes: several diff batches
    Crdt.merge(l, Map.new(1..300, &{&1, {:small, &1}}))
    # single entries larger than the bound travel alone
    Crdt.put(l, :big, :binary.copy("b", 5_000))
    Crdt.merge(l, %{big2: :binary.copy("c", 3_000), tiny: 1, tiny2: 2})
    Crdt.drop(l, Enum.to_list(1..300))
    {m, log} = drain(m)

    assert_bounded(log.messages, bound)
    assert Enum.count(kinds(log.messages), &(&1 == :snapshot)) > 1

    batches_for_merge =
      Enum.count(log.messages, fn
        {:hordec_stream, _, _, _, {:diffs, [{:add, k, {:small, _}} | _]}} -> is_integer(k)
        _ -> false
      end)

    assert batches_for_merge > 1, "a 300-key merge must not fit one #{bound}-byte batch"

    alone =
      for {:hordec_stream, _, _, _, {:diffs, [{:add, k, _}]}} <- log.messages,
          k in [:big, :big2],
          do: k

    assert Enum.sort(alone) == [:big, :big2]
    assert Mirror.to_map(m) == Crdt.to_map(l)

    # a fresh subscription's snapshot is bounded too, big entries included
    m2 = subscribed(l)
    {m2, log2} = drain(m2)
    assert_bounded(log2.messages, bound)
    assert Mirror.to_map(m2) == Crdt.to_map(l)
  end

  test "subscribing again starts a new epoch with a fresh snapshot; unsubscribing stops the stream" do
    h = start_hordec()
    l = attach(h)
    Crdt.put(l, :x, 1)
    m = subscribed(l, table: :"mirror_table_#{System.unique_integer([:positive])}")
    {m, _} = drain(m)
    first = Mirror.epoch(m)

    assert {:ok, m} = Mirror.subscribe(m)
    assert Mirror.epoch(m) != first
    refute Mirror.synced?(m)
    {m, log} = drain(m)
    assert Mirror.synced?(m)
    assert log.diffs == [], "nothing changed between the two snapshots"
    assert Mirror.to_map(Mirror.table(m)) == %{x: 1}, "a named table reads by its name too"

    assert {:ok, m} = Mirror.unsubscribe(m)
    Crdt.put(l, :y, 2)
    {m, log} = drain(m)
    assert log.messages == []
    assert Mirror.to_map(m) == %{x: 1}
    assert Crdt.stats(l).subscribers == 0
  end

  test "storage: :owner hands over whole snapshots and diff batches, and keeps no table" do
    h = start_hordec()
    l = attach(h, stream_batch_bytes: 512)
    Crdt.merge(l, Map.new(1..100, &{&1, {:v, &1}}))

    m = subscribed(l, storage: :owner, drop_seq: 2)
    {m, log} = drain(m)
    # seq 2, a snapshot part, was dropped: the first epoch's snapshot never completed
    assert log.resyncs == 1
    assert [entries] = log.snapshots
    assert Map.new(entries) == Crdt.to_map(l) and length(entries) == 100

    Crdt.put(l, :new, 1) |> Crdt.delete(1)
    {m, log} = drain(m)
    assert log.diffs == [{:add, :new, 1}, {:remove, 1}] and log.snapshots == []

    # a resubscription hands over the whole map again
    assert {:ok, m} = Mirror.subscribe(m)
    {_m, log} = drain(m)
    assert [entries] = log.snapshots
    assert Map.new(entries) == Crdt.to_map(l)

    assert_raise ArgumentError, ~r/keeps no table/, fn -> Mirror.to_map(m) end

    assert_raise ArgumentError, ~r/:table needs storage: :ets/, fn ->
      Mirror.new({:m, h.node}, storage: :owner, table: :t)
    end
  end

  test "messages that are not of the current stream are ignored" do
    h = start_hordec()
    l = attach(h)
    m = subscribed(l)
    {m, _} = drain(m)
    {name, _} = Mirror.replica(m)
    epoch = Mirror.epoch(m)

    assert Mirror.handle_message(m, :something_else) == :ignore
    assert Mirror.handle_message(m, {:hordec_stream, :other, epoch, 2, {:diffs, []}}) == :ignore
    assert Mirror.handle_message(m, {:hordec_stream, name, epoch + 1, 2, {:diffs, []}}) == :ignore

    # of its own epoch but malformed, or out of place: doubt, so resync
    for body <- [{:diffs, [:bad]}, {:diffs, :bad}, {:snapshot, [], false}, :junk] do
      assert {:resync, m2} = Mirror.handle_message(m, {:hordec_stream, name, epoch, 2, body})
      refute Mirror.synced?(m2)
      assert Mirror.resyncs(m2) == 1
    end

    # a repeated sequence number is a doubt too
    assert {:resync, _} = Mirror.handle_message(m, {:hordec_stream, name, epoch, 1, {:diffs, []}})
  end

  test "subscribe reports an unreachable replica as {:error, reason}" do
    h = start_hordec()
    assert Mirror.subscribe(Mirror.new({:no_such_replica, h.node})) == {:error, :noproc}

    nobody = :"nobody_#{System.unique_integer([:positive])}@127.0.0.1"
    assert Mirror.subscribe(Mirror.new({:m, nobody})) == {:error, :noconnection}
  end

  test "bad arguments raise ArgumentError naming them" do
    assert_raise ArgumentError, ~r/expected replica to be \{name, node\}/, fn ->
      Mirror.new(:not_a_tuple)
    end

    assert_raise ArgumentError, ~r/unknown HordeC.Mirror options \[:bogus\]/, fn ->
      Mirror.new({:m, node()}, bogus: 1)
    end

    assert_raise ArgumentError, ~r/invalid HordeC.Mirror option :drop_seq: 0/, fn ->
      Mirror.new({:m, node()}, drop_seq: 0)
    end

    assert_raise ArgumentError, ~r/invalid HordeC.Mirror option :timeout/, fn ->
      Mirror.new({:m, node()}, timeout: -1)
    end
  end
end
