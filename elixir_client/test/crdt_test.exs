defmodule HordeC.CrdtTest do
  @moduledoc """
  Replicas of one map on three real hordec nodes, reached through `HordeC.Crdt` from this BEAM
  node: replication, partitions and heals (fault injection with block_peers), replicas restarted
  empty, change subscriptions, and hostile input.
  """
  use HordeC.InteropCase, async: false

  alias HordeC.Crdt

  @converge 10_000
  @engine_types [
    :hello,
    :delta,
    :delta_ack,
    :digest,
    :ctx,
    :tree,
    :tree_diff,
    :chunk,
    :elems,
    :end,
    :ack
  ]

  # Three hordecs, each hosting replica :m, full mesh; a local HordeC.Crdt process per replica.
  setup do
    hs = start_hordecs(3)
    locals = for {h, i} <- Enum.with_index(hs, 1), do: attach(:"m_local_#{i}", h)
    neighbours = for h <- hs, do: {:m, h.node}
    for l <- locals, do: assert(Crdt.set_neighbours(l, neighbours) == :ok)
    %{hs: hs, locals: locals}
  end

  defp attach(local, h, extra \\ []) do
    start_supervised!({Crdt, [name: local, hordec: h.node, replica: :m] ++ extra}, id: local)
    local
  end

  defp converged(locals, expected) do
    eventually(fn -> Enum.all?(locals, &(Crdt.to_map(&1) == expected)) end, @converge)
  end

  defp block(hs, a, others) do
    assert ctl(a, {:block_peers, Enum.map(others, & &1.node)}) == :ok
    for o <- others, do: assert(ctl(o, {:block_peers, [a.node]}) == :ok)
    eventually(fn -> Enum.all?(others, &(&1.node not in peers(a))) end)
    _ = hs
  end

  defp unblock(a, others) do
    assert ctl(a, {:unblock_peers, Enum.map(others, & &1.node)}) == :ok
    for o <- others, do: assert(ctl(o, {:unblock_peers, [a.node]}) == :ok)
  end

  test "a write on one replica is read on the others", %{locals: [l1, l2, l3]} do
    assert Crdt.put(l1, "k", %{v: 1}) == l1
    assert Crdt.get(l1, "k") == %{v: 1}, "writes return once the attached replica applied them"
    converged([l1, l2, l3], %{"k" => %{v: 1}})
    assert Crdt.get(l3, "k") == %{v: 1}
    assert Crdt.take(l2, ["k", "missing"]) == %{"k" => %{v: 1}}
    assert Crdt.get(l2, "missing") == nil
  end

  test "every API call of DeltaCrdt's shape", %{locals: [l1, l2, l3]} do
    big = :binary.copy("x", 200_000)
    l1 |> Crdt.merge(%{1 => :one, 2 => :two, {:t, 3} => [3], "big" => big}) |> Crdt.put(:a, 1.5)
    converged([l1, l2, l3], %{1 => :one, 2 => :two, {:t, 3} => [3], "big" => big, :a => 1.5})
    l2 |> Crdt.drop([1, 2]) |> Crdt.delete(:a)
    converged([l1, l2, l3], %{{:t, 3} => [3], "big" => big})
    # Keys are terms compared exactly: 1 and 1.0 are different keys.
    Crdt.put(l3, 1, :int) |> Crdt.put(1.0, :float)
    eventually(fn -> Crdt.take(l1, [1, 1.0]) == %{1 => :int, 1.0 => :float} end, @converge)
  end

  test "concurrent writes converge to one value everywhere", %{locals: locals} do
    tasks = for {l, i} <- Enum.with_index(locals), do: Task.async(fn -> Crdt.put(l, :same, i) end)
    Enum.each(tasks, &Task.await/1)

    eventually(
      fn ->
        values = Enum.map(locals, &Crdt.get(&1, :same))
        length(Enum.uniq(values)) == 1 and hd(values) in [0, 1, 2]
      end,
      @converge
    )
  end

  test "a partitioned node catches up after the heal, deletes and overwrites included",
       %{hs: [h1, h2, h3] = hs, locals: [l1, l2, l3]} do
    Crdt.merge(l1, %{a: 1, b: 2, c: 3})
    converged([l1, l2, l3], %{a: 1, b: 2, c: 3})

    block(hs, h3, [h1, h2])
    # Meanwhile on the majority side: an overwrite, a delete, a new key; and on h3 its own write.
    l1 |> Crdt.put(:a, 100) |> Crdt.delete(:b) |> Crdt.put(:d, 4)
    Crdt.put(l3, :e, 5)
    converged([l1, l2], %{a: 100, c: 3, d: 4})

    assert Crdt.to_map(l3) == %{a: 1, b: 2, c: 3, e: 5},
           "the cut-off replica must not see the writes yet"

    unblock(h3, [h1, h2])
    converged([l1, l2, l3], %{a: 100, c: 3, d: 4, e: 5})
  end

  test "a replica restarted empty catches up", %{hs: [_h1, h2, _h3] = hs, locals: [l1, _l2, l3]} do
    entries = Map.new(1..2_000, &{&1, {:v, &1}})
    Crdt.merge(l1, entries)
    Crdt.delete(l1, 7)
    expected = Map.delete(entries, 7)
    converged([l1, l3], expected)

    old_id = ctl(h2, {:crdt_stop, :m})
    assert old_id == :ok
    stop_supervised!(:m_local_2)
    l2 = attach(:m_local_2b, h2)
    assert Crdt.to_map(l2) == %{}, "the restarted replica starts empty"
    Crdt.set_neighbours(l2, for(h <- hs, do: {:m, h.node}))
    converged([l2], expected)
    # and it takes part again: its writes reach the others
    Crdt.put(l2, :after_restart, true)
    converged([l1, l2, l3], Map.put(expected, :after_restart, true))
  end

  test "on_diffs reports adds and removes", %{hs: [h1 | _], locals: [l1, l2, _l3]} do
    Crdt.put(l1, :before, 0)
    me = self()
    attach(:watcher, h1, on_diffs: fn diffs -> send(me, {:diffs, diffs}) end)
    Crdt.put(l2, :x, 1)
    assert_receive {:diffs, [{:add, :x, 1}]}, @converge
    Crdt.put(l2, :x, 2)
    assert_receive {:diffs, [{:add, :x, 2}]}, @converge
    Crdt.delete(l2, :x)
    assert_receive {:diffs, [{:remove, :x}]}, @converge
    # exactly those: what the map held when the watcher started is not a change
    refute_received {:diffs, _}
  end

  test "bad input gets a clear error and loses nothing", %{hs: [h1 | _], locals: [l1, l2, _]} do
    Crdt.put(l1, :keep, :me)
    converged([l1, l2], %{keep: :me})

    too_big = :binary.copy("y", 2_000_000)

    assert_raise ArgumentError, ~r/do not fit in one sync message/, fn ->
      Crdt.put(l1, :huge, too_big)
    end

    assert GenServer.call({:m, h1.node}, {:put, :only_two}) == {:error, :badarg}
    assert GenServer.call({:m, h1.node}, {:merge, [:not, :a, :map]}) == {:error, :badarg}
    assert GenServer.call({:m, h1.node}, {:drop, [:a | :improper]}) == {:error, :badarg}
    assert GenServer.call({:m, h1.node}, :nonsense) == {:error, :badarg}

    before = Crdt.stats(l1).rejected
    # Sync traffic from a process that is not a neighbour, and malformed sync traffic.
    send({:m, h1.node}, {:"$hordec_replica", :m, {:"$hordec_crdt", 1, :garbage}})
    send({:m, h1.node}, {:"$hordec_replica", :m, :not_a_message})
    send({:m, h1.node}, :plain_junk)
    eventually(fn -> Crdt.stats(l1).rejected >= before + 3 end)

    assert Crdt.to_map(l1) == %{keep: :me}
    Crdt.put(l1, :still, :working)
    converged([l1, l2], %{keep: :me, still: :working})
  end

  test "crdt_start on a name taken by another process is refused", %{hs: [h1 | _]} do
    assert ctl(h1, {:crdt_start, :hordec, []}) == {:error, :name_taken}

    assert ctl(h1, {:crdt_start, :m, [bogus: 1]}) ==
             {:error, {:bad_option, {:bogus, 1}}}

    assert ctl(h1, {:crdt_stop, :no_such_map}) == {:error, :not_found}
  end

  # Every engine message must be a term a real BEAM decodes (a malformed one would make the BEAM drop
  # the whole connection). Here this test process poses as a neighbour replica: it answers the
  # handshake, then everything the replica sends it arrives decoded in its mailbox.
  test "sync messages decode in a real BEAM (a BEAM process posing as a neighbour)",
       %{hs: hs, locals: [l1 | _]} do
    fake = :fake_replica
    Process.register(self(), fake)
    h1 = hd(hs).node
    :ok = Crdt.set_neighbours(l1, [{fake, node()} | for(h <- hs, do: {:m, h.node})])

    assert_receive {:"$hordec_replica", :m,
                    {:"$hordec_crdt", 1, :hello, rid, inc, 0, 0, {depth, max_bytes}}},
                   @converge

    assert is_integer(rid) and rid > 0 and is_integer(inc) and is_integer(depth) and
             is_integer(max_bytes)

    my_rid = 4242

    send(
      {:m, h1},
      {:"$hordec_replica", fake,
       {:"$hordec_crdt", 1, :hello, my_rid, 1, rid, inc, {depth, max_bytes}}}
    )

    Crdt.put(l1, :probe, {"value", 1.5, [self()]})
    me = self()

    {{seq, records}, seen1} =
      receive_engine(
        fn
          {:delta, ^rid, ^inc, ^my_rid, 1, {seq, records}} ->
            if List.keymember?(records, :probe, 0), do: {seq, records}

          _ ->
            nil
        end,
        @converge,
        []
      )

    assert {:probe, [{^rid, ctr, hlc, {"value", 1.5, [^me]}}], removed} =
             List.keyfind(records, :probe, 0)

    assert is_integer(ctr) and is_integer(hlc) and is_binary(removed)

    # We neither acknowledge the delta nor answer the push repair a replica starts toward a peer it
    # has just met, so both must come: the same delta again (retransmit) and the repair's first
    # message (a piece of its causal context).
    ctx? =
      &match?(
        {:ctx, ^rid, ^inc, ^my_rid, 1, {_sid, _req, _piece, _pieces, bin}} when is_binary(bin),
        &1
      )

    retransmit? = fn
      {:delta, ^rid, ^inc, ^my_rid, 1, {^seq, again}} -> List.keymember?(again, :probe, 0)
      _ -> false
    end

    wants = if Enum.any?(seen1, ctx?), do: [retransmit?], else: [retransmit?, ctx?]
    seen2 = receive_all(wants, [])

    for {type, _, _, _, _, _} <- seen1 ++ seen2, do: assert(type in @engine_types)
  end

  # Receives engine messages until each predicate of `wants` has matched one.
  defp receive_all([], seen), do: seen

  defp receive_all(wants, seen) do
    {i, more} = receive_engine(fn msg -> Enum.find_index(wants, & &1.(msg)) end, @converge, [])
    receive_all(List.delete_at(wants, i), seen ++ more)
  end

  # Receives `{:"$hordec_replica", :m, {:"$hordec_crdt", 1, type, a, b, c, d, body}}` messages until
  # `want.({type, a, b, c, d, body})` is truthy; returns that value and every message seen (as
  # `{type, a, b, c, d, body}`). Anything else from the replica fails the test.
  defp receive_engine(want, timeout, seen) do
    deadline = System.monotonic_time(:millisecond) + timeout
    receive_engine(want, deadline, timeout, seen)
  end

  defp receive_engine(want, deadline, timeout, seen) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {:"$hordec_replica", :m, {:"$hordec_crdt", 1, type, a, b, c, d, body}}
      when is_atom(type) and is_integer(a) and is_integer(b) and is_integer(c) and
             is_integer(d) ->
        msg = {type, a, b, c, d, body}

        case want.(msg) do
          nil -> receive_engine(want, deadline, timeout, [msg | seen])
          value -> {value, Enum.reverse([msg | seen])}
        end

      {:"$hordec_replica", _, _} = other ->
        flunk("not a well-formed engine message: #{inspect(other, limit: 20)}")
    after
      left ->
        flunk(
          "the replica did not send the expected message in #{timeout} ms; it sent: " <>
            inspect(Enum.map(seen, &elem(&1, 0)) |> Enum.frequencies())
        )
    end
  end
end
