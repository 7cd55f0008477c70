defmodule HordeC.RegistryFaultTest do
  @moduledoc """
  `HordeC.Registry` under faults, on real hordec nodes and real BEAM peers: partitions between
  hordec nodes (`block_peers`) and their heal, conflicts through different hordec nodes, a hordec
  killed with `kill -9`, a BEAM node cut off from its hordec or going down, a lost stream message,
  and no hordec reachable at all.
  """
  use HordeC.InteropCase, async: false

  alias HordeC.{Attachment, Registry}
  alias HordeC.Test.RegistryHelpers, as: H

  @converge 10_000

  setup_all do
    %{p1: start_peer(), p2: start_peer()}
  end

  # Two fresh hordec nodes per test (some tests kill one), the registry on the runner (attached to
  # h1), p1 (h1, then h2) and p2 (h2, then h1).
  setup ctx do
    [h1, h2] = start_hordecs(2)
    reg = :"freg_#{System.unique_integer([:positive])}"
    opts = [name: reg, keys: Map.get(ctx, :keys, :unique)] ++ Map.get(ctx, :reg_opts, [])
    start_supervised!({Registry, opts ++ [hordec: [h1.node, h2.node]]})

    for {p, hs} <- [{ctx.p1, [h1.node, h2.node]}, {ctx.p2, [h2.node, h1.node]}] do
      assert {:ok, _} = peer_call(p, H, :start_registry, [opts ++ [hordec: hs]])
    end

    on_exit(fn ->
      for p <- [ctx.p1, ctx.p2], do: stop_on(p, reg)
    end)

    %{reg: reg, h1: h1, h2: h2}
  end

  # Stops the registry on a peer after a test, whatever state the peer is in.
  defp stop_on(peer, reg) do
    peer_call(peer, H, :stop_registry, [reg])
  catch
    _, _ -> :ok
  end

  defp on(peer, fun, args), do: peer_call(peer, Registry, fun, args)
  defp holder(peer, opts \\ []), do: peer_call(peer, H, :holder, [self(), opts])
  defp hrun(holder, fun, args), do: H.run(holder, Registry, fun, args)
  defp alive?(peer, pid), do: peer_call(peer, Process, :alive?, [pid])

  defp partition(a, b) do
    assert ctl(a, {:block_peers, [b.node]}) == :ok
    assert ctl(b, {:block_peers, [a.node]}) == :ok
    eventually(fn -> b.node not in peers(a) and a.node not in peers(b) end)
  end

  defp heal(a, b) do
    assert ctl(a, {:unblock_peers, [b.node]}) == :ok
    assert ctl(b, {:unblock_peers, [a.node]}) == :ok
  end

  # Every BEAM node's reads give `expected` for `key`.
  defp everywhere(ctx, key, expected) do
    eventually(
      fn ->
        views = [
          runner: Registry.lookup(ctx.reg, key),
          p1: on(ctx.p1, :lookup, [ctx.reg, key]),
          p2: on(ctx.p2, :lookup, [ctx.reg, key])
        ]

        assert Enum.all?(views, fn {_, v} -> v == expected end),
               "#{inspect(key)}: expected #{inspect(expected)} everywhere, got #{inspect(views)}"
      end,
      @converge
    )
  end

  # The :name_conflict exit signals `holder` got (it traps exits and reports them).
  defp conflict_exits(holder) do
    collect = fn collect, acc ->
      receive do
        {:holder_exit, ^holder, _from, {:name_conflict, _, _, _} = r} ->
          collect.(collect, [r | acc])
      after
        0 -> Enum.reverse(acc)
      end
    end

    collect.(collect, [])
  end

  @tag reg_opts: [listeners: [:fault_listener]]
  test "partition: the same key on both sides; after the heal one survivor, the loser exited once",
       ctx do
    %{reg: reg, h1: h1, h2: h2, p1: p1, p2: p2} = ctx
    Process.register(self(), :fault_listener)
    partition(h1, h2)

    a = holder(p1, trap: true)
    b = holder(p2, trap: true)
    c = holder(p1)
    d = holder(p2)
    assert {:ok, _} = hrun(a, :register, [reg, :k, :a])
    assert {:ok, _} = hrun(c, :register, [reg, :k2, :c])
    # Later on the other side: these are the latest writes, so they win. (Hybrid logical clocks
    # count milliseconds: writes within one millisecond on two nodes have no "later" one. This
    # short wait is the thing under test: latest-wins.)
    Process.sleep(5)
    assert {:ok, _} = hrun(b, :register, [reg, :k, :b])
    assert {:ok, _} = hrun(d, :register, [reg, :k2, :d])
    assert on(p1, :lookup, [reg, :k]) == [{a, :a}]
    assert on(p2, :lookup, [reg, :k]) == [{b, :b}]
    assert_receive {:register, ^reg, :k, ^a, :a}, @converge

    heal(h1, h2)
    everywhere(ctx, :k, [{b, :b}])
    everywhere(ctx, :k2, [{d, :d}])

    # The trapping loser got the signal exactly once, and lives on without the name.
    assert_receive {:holder_exit, ^a, _, {:name_conflict, {:k, :a}, ^reg, ^b}}, @converge
    # Nothing more may arrive (a short wait is the thing under test here).
    Process.sleep(300)
    assert conflict_exits(a) == []
    assert conflict_exits(b) == []
    assert alive?(p1, a)
    assert Registry.keys(reg, a) == []
    # The non-trapping loser died of it; the winner lives.
    eventually(fn -> not alive?(p1, c) end)
    assert alive?(p2, d)

    # Listeners (here on the runner, attached through h1's side) saw the loser leave, then the winner.
    assert_receive {:unregister, ^reg, :k, ^a}, @converge
    assert_receive {:register, ^reg, :k, ^b, :b}, @converge
  end

  test "concurrent registrations through different hordec nodes: one winner, losers told once",
       ctx do
    %{reg: reg, p1: p1, p2: p2} = ctx
    keys = for i <- 1..15, do: {:raced, i}
    pairs = for k <- keys, do: {k, holder(p1, trap: true), holder(p2, trap: true)}

    results =
      for {k, a, b} <- pairs do
        ta = Task.async(fn -> hrun(a, :register, [reg, k, :a]) end)
        tb = Task.async(fn -> hrun(b, :register, [reg, k, :b]) end)
        {k, a, b, Task.await(ta), Task.await(tb)}
      end

    # Read the winners once the replicas have exchanged everything: until then every node can agree on a
    # registration the other replica's has not yet overridden.
    eventually(
      fn ->
        Enum.all?([ctx.h1.node, ctx.h2.node], fn h ->
          GenServer.call({reg, h}, :stats)[:idle] == true
        end)
      end,
      @converge
    )

    for {k, a, b, ra, rb} <- results do
      assert match?({:ok, _}, ra) or match?({:ok, _}, rb), "nobody got #{inspect(k)}"

      winner =
        eventually(
          fn ->
            [{w, _}] = Registry.lookup(reg, k)

            on(p1, :lookup, [reg, k]) == Registry.lookup(reg, k) and
              on(p2, :lookup, [reg, k]) == Registry.lookup(reg, k) and w
          end,
          @converge
        )

      assert winner in [a, b]
      loser = if winner == a, do: b, else: a
      loser_result = if winner == a, do: rb, else: ra

      case loser_result do
        {:ok, _} ->
          # It was registered for a while: it gets the signal, once.
          assert_receive {:holder_exit, ^loser, _, {:name_conflict, {^k, _}, ^reg, ^winner}},
                         @converge

        {:error, {:already_registered, ^winner}} ->
          :ok
      end
    end

    # No second signal for anyone (a short wait is the thing under test).
    Process.sleep(300)
    for {_, a, b} <- pairs, do: assert(conflict_exits(a) ++ conflict_exits(b) == [])
  end

  test "kill -9 of a hordec: names of live processes stay, on every BEAM node", ctx do
    %{reg: reg, h1: h1, h2: h2, p1: p1, p2: p2} = ctx
    # p2's listener reports to us, to check that p2 never sees a name go.
    listener = holder(p2)
    peer_call(p2, Process, :register, [listener, :"#{reg}_l"])
    peer_call(p2, H, :stop_registry, [reg])

    assert {:ok, _} =
             peer_call(p2, H, :start_registry, [
               [name: reg, keys: :unique, hordec: [h2.node, h1.node], listeners: [:"#{reg}_l"]]
             ])

    holders = for i <- 1..5, do: {i, holder(p1)}
    for {i, h} <- holders, do: assert({:ok, _} = hrun(h, :register, [reg, {:p1, i}, i]))
    local = H.holder(self())
    {:ok, _} = H.run(local, Registry, :register, [reg, :runner_name, :r])
    for {i, h} <- holders, do: everywhere(ctx, {:p1, i}, [{h, i}])
    assert peer_call(p1, Attachment, :replica, [reg]) == {reg, h1.node}

    signal(h1, "KILL")
    # A write made right away waits for the failover and succeeds.
    late = holder(p1)
    assert {:ok, _} = hrun(late, :register, [reg, :after_kill, :late])

    assert peer_call(p1, Attachment, :replica, [reg]) == {reg, h2.node}
    eventually(fn -> Attachment.replica(reg) == {reg, h2.node} end, @converge)

    for {i, h} <- holders do
      assert alive?(p1, h)
      everywhere(ctx, {:p1, i}, [{h, i}])
    end

    everywhere(ctx, :runner_name, [{local, :r}])
    everywhere(ctx, :after_kill, [{late, :late}])
    refute_received {:holder_msg, ^listener, {:unregister, _, _, _}}

    # The new attachment does its job: a death is reported through h2.
    {1, h} = hd(holders)
    send(h, {:stop, :normal})
    everywhere(ctx, {:p1, 1}, [])
  end

  test "a BEAM node cut off from its hordec fails over and keeps its names", ctx do
    %{reg: reg, h1: h1, h2: h2, p1: p1} = ctx
    h = holder(p1)
    {:ok, _} = hrun(h, :register, [reg, :cut, 1])
    everywhere(ctx, :cut, [{h, 1}])

    # h1 refuses p1: p1's registry sees its replica go, h1 sees p1's registry go.
    assert ctl(h1, {:block_peers, [p1.node]}) == :ok
    eventually(fn -> peer_call(p1, Attachment, :replica, [reg]) == {reg, h2.node} end, @converge)
    everywhere(ctx, :cut, [{h, 1}])
    {:ok, _} = hrun(h, :register, [reg, :cut2, 2])
    everywhere(ctx, :cut2, [{h, 2}])
    assert ctl(h1, {:unblock_peers, [p1.node]}) == :ok
  end

  test "a BEAM node going down takes its processes' names with it, everywhere", ctx do
    %{reg: reg, h1: h1, h2: h2, p2: p2} = ctx
    p3 = start_peer()

    assert {:ok, _} =
             peer_call(p3, H, :start_registry, [
               [name: reg, keys: :unique, hordec: [h1.node, h2.node]]
             ])

    h = peer_call(p3, H, :holder, [self()])
    {:ok, _} = H.run(h, Registry, :register, [reg, :on_p3, 3])
    eventually(fn -> on(p2, :lookup, [reg, :on_p3]) == [{h, 3}] end)

    :peer.stop(p3.pid)
    eventually(fn -> Registry.lookup(reg, :on_p3) == [] end, @converge)
    eventually(fn -> on(p2, :lookup, [reg, :on_p3]) == [] end, @converge)
    assert Registry.count(reg) == 0
  end

  @tag reg_opts: [listeners: [:gap_listener], drop_stream_seq: 4]
  test "a lost stream message: the mirror resyncs, listeners hear each change once", ctx do
    %{reg: reg, p2: p2} = ctx
    Process.register(self(), :gap_listener)
    h = holder(p2)
    for i <- 1..8, do: {:ok, _} = hrun(h, :register, [reg, {:gap, i}, i])

    # A lost message is noticed when a later one arrives: keep the stream moving with probes.
    eventually(
      fn ->
        {:ok, _} = hrun(h, :register, [reg, {:probe, System.unique_integer()}, nil])
        Enum.all?(1..8, &(Registry.lookup(reg, {:gap, &1}) == [{h, &1}]))
      end,
      @converge
    )

    for i <- 1..8 do
      assert_receive {:register, ^reg, {:gap, ^i}, ^h, ^i}, @converge
      refute_received {:register, ^reg, {:gap, ^i}, _, _}
    end
  end

  test "with no hordec reachable, writes exit within their timeout; reads keep working", ctx do
    %{h1: h1} = ctx
    reg = :"alone_#{System.unique_integer([:positive])}"

    start_supervised!({Registry, name: reg, keys: :unique, hordec: h1.node, timeout: 300}, id: reg)

    {:ok, _} = Registry.register(reg, :before, 1)

    signal(h1, "KILL")
    t0 = System.monotonic_time(:millisecond)

    assert {:noconnection, {Registry, :register, [^reg, :after, 2]}} =
             catch_exit(Registry.register(reg, :after, 2))

    assert System.monotonic_time(:millisecond) - t0 < 2_000
    assert Registry.lookup(reg, :before) == [{self(), 1}]
    assert catch_exit(Registry.unregister(reg, :before)) |> elem(0) == :noconnection

    # A registry whose only hordec never existed starts anyway, and its writes exit in time.
    nobody = :"nobody_#{System.unique_integer([:positive])}@127.0.0.1"
    reg2 = :"nobody_#{System.unique_integer([:positive])}"

    start_supervised!({Registry, name: reg2, keys: :unique, hordec: nobody, timeout: 200},
      id: reg2
    )

    assert Registry.lookup(reg2, :x) == []
    assert {:noconnection, _} = catch_exit(Registry.put_meta(reg2, :k, 1))
  end
end
