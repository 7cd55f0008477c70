defmodule HordeC.RegistryClientTest do
  @moduledoc """
  The `HordeC.Registry` client's own machinery (attach, mirror, failover with re-assertion and
  reconciliation, write barriers, stream resync, no replica reachable), tested against a fake
  replica (`HordeC.Test.FakeRegistryReplica`) on BEAM peers posing as hordec nodes. The fake does
  not replicate, which makes what a failover must re-assert visible and deterministic. The same
  behaviours against real hordec nodes are in registry_test.exs and registry_fault_test.exs.
  """
  use HordeC.InteropCase, async: false

  alias HordeC.{Attachment, Cluster, Registry}
  alias HordeC.Test.FakeRegistryReplica, as: Fake
  alias HordeC.Test.RegistryHelpers, as: H

  # Two BEAM peers posing as hordec nodes. Tests tagged :fresh stop them, so they get their own.
  setup_all do
    %{shared: fakes()}
  end

  setup ctx do
    [f1, f2] = if ctx[:fresh], do: fakes(), else: ctx.shared
    %{f1: f1, f2: f2, reg: :"creg_#{System.unique_integer([:positive])}"}
  end

  defp fakes do
    fs = for _ <- 1..2, do: start_peer()
    for f <- fs, do: peer_call(f, Fake, :start_hordec, [])
    fs
  end

  defp start(ctx, opts \\ []) do
    opts = [name: ctx.reg, keys: :unique, hordec: [ctx.f1.node, ctx.f2.node]] ++ opts
    start_supervised!({Registry, opts}, id: ctx.reg)
  end

  defp dump(f, reg), do: peer_call(f, Fake, :dump, [reg])

  test "attach, members :auto, register, read-your-writes", ctx do
    %{reg: reg, f1: f1, f2: f2} = ctx
    start(ctx, meta: [m: 1])
    assert Attachment.replica(reg) == {reg, f1.node}
    assert Cluster.members(reg) == Enum.sort([{reg, f1.node}, {reg, f2.node}])
    assert Registry.meta(reg, :m) == {:ok, 1}
    assert H.read_your_writes(reg, 10, 10) == []
    {:ok, _} = Registry.register(reg, :k, :v)
    me = self()
    assert %{{:reg, :k, ^me} => {:v, owner}} = dump(f1, reg)
    assert owner == Process.whereis(reg)
    # a replica on every listed node, so that a failover finds one
    eventually(fn -> is_map(dump(f2, reg)) end)
  end

  @tag :fresh
  test "failover re-asserts what this node's processes hold; listeners see no change", ctx do
    %{reg: reg, f1: f1, f2: f2} = ctx
    Process.register(self(), :client_listener)
    start(ctx, listeners: [:client_listener])
    holders = for i <- 1..5, do: {i, H.holder(self())}
    for {i, h} <- holders, do: {:ok, _} = H.run(h, Registry, :register, [reg, {:h, i}, i])
    for {i, h} <- holders, do: assert_receive({:register, ^reg, {:h, ^i}, ^h, ^i})
    eventually(fn -> dump(f2, reg) == %{} end)

    :peer.stop(f1.pid)
    # a write right after the loss waits for the failover, then succeeds
    assert {:ok, _} = Registry.register(reg, :after, 1)
    assert Attachment.replica(reg) == {reg, f2.node}
    map = dump(f2, reg)
    for {i, h} <- holders, do: assert(map[{:reg, {:h, i}, h}] == {i, Process.whereis(reg)})
    for {i, h} <- holders, do: assert(Registry.lookup(reg, {:h, i}) == [{h, i}])
    assert_receive {:register, ^reg, :after, _, 1}
    refute_received {:unregister, _, _, _}

    # deaths are reported to the new replica
    {1, h} = hd(holders)
    send(h, {:stop, :normal})
    eventually(fn -> not Map.has_key?(dump(f2, reg), {:reg, {:h, 1}, h}) end)
    assert_receive {:unregister, ^reg, {:h, 1}, ^h}
  end

  @tag :fresh
  test "after a failover, entries of ours the new replica has but we do not are removed", ctx do
    %{reg: reg, f1: f1, f2: f2} = ctx
    start(ctx)
    client = Process.whereis(reg)
    alive = H.holder(self())
    dead = spawn(fn -> :ok end)
    eventually(fn -> is_map(dump(f2, reg)) end)
    # As if an unregister and a death had been applied on f1 only, which then died. (A fake
    # replica does not replicate: tell f2 about our registry as f1 would have.)
    {:ok, _} = GenServer.call({reg, f2.node}, {:attach, client, []})

    for {k, p} <- [stale: alive, gone: dead] do
      {:ok, _} = GenServer.call({reg, f2.node}, {:register, k, p, :old, client})
    end

    :peer.stop(f1.pid)
    eventually(fn -> Attachment.replica(reg) == {reg, f2.node} end)

    eventually(fn ->
      dump(f2, reg) |> Map.keys() |> Enum.filter(&match?({:reg, _, _}, &1)) == []
    end)

    assert Registry.lookup(reg, :stale) == []
    assert Registry.lookup(reg, :gone) == []
  end

  test "a stopped replica (node still up) is failed over too", ctx do
    %{reg: reg, f1: f1, f2: f2} = ctx
    start(ctx)
    {:ok, _} = Registry.register(reg, :k, 1)
    peer_call(f1, GenServer, :stop, [reg])
    eventually(fn -> Attachment.replica(reg) == {reg, f2.node} end)
    assert Map.has_key?(dump(f2, reg), {:reg, :k, self()})
  end

  test "a lost stream message: resync from a multi-part snapshot, each change told once", ctx do
    %{reg: reg} = ctx
    Process.register(self(), :gap_listener2)
    start(ctx, listeners: [:gap_listener2], drop_stream_seq: 5)
    # vouched for by the replica itself (as for a C process), so not linked by our registry
    other = :hordec
    h = H.holder(self())

    for i <- 1..10 do
      # written straight to the replica, as another node would: no barrier, only the stream
      {:ok, _} = GenServer.call({reg, ctx.f1.node}, {:register, {:k, i}, h, i, other})
    end

    eventually(fn -> Registry.count(reg) == 10 end)

    for i <- 1..10 do
      assert_receive {:register, ^reg, {:k, ^i}, ^h, ^i}
      refute_received {:register, ^reg, {:k, ^i}, _, _}
    end

    assert Registry.lookup(reg, {:k, 3}) == [{h, 3}]
  end

  test "a replica that dropped our attach record: writes and the stream make us attach again",
       ctx do
    %{reg: reg, f1: f1} = ctx
    start(ctx)
    client = Process.whereis(reg)
    {:ok, _} = Registry.register(reg, :before, 1)

    # the record goes out in the stream: the registry attaches again, re-asserting what it holds
    :ok = GenServer.call({reg, f1.node}, {:forget_client, client})
    eventually(fn -> Map.has_key?(dump(f1, reg), {:client, client}) end)
    assert dump(f1, reg)[{:reg, :before, self()}] == {1, client}

    # a write refused with not_attached: attach again, then the write goes through
    :sys.suspend(client)
    :ok = GenServer.call({reg, f1.node}, {:forget_client, client})
    h = H.holder(self())
    task = Task.async(fn -> H.run(h, Registry, :register, [reg, :after, 2]) end)
    # (let the write reach the replica and be refused while the registry cannot see the stream:
    # the stream's diff and the writer's call wait in its mailbox)
    eventually(fn ->
      {:messages, m} = Process.info(client, :messages)
      length(m) >= 2
    end)

    :sys.resume(client)
    assert {:ok, _} = Task.await(task)
    assert dump(f1, reg)[{:reg, :after, h}] == {2, client}
    assert Registry.lookup(reg, :after) == [{h, 2}]
  end

  test "our record naming another replica than ours: the registry attaches again", ctx do
    %{reg: reg, f1: f1, f2: f2} = ctx
    start(ctx)
    client = Process.whereis(reg)
    {:ok, _} = Registry.register(reg, :held, 1)
    assert dump(f1, reg)[{:client, client}] == {reg, f1.node}

    # the attach record resolves to f2's (an older attach, ordered after ours by a clock that runs ahead)
    :ok = GenServer.call({reg, f1.node}, {:record_names, client, {reg, f2.node}})

    # the registry saw it in its stream and attached again through f1: the record names f1 again, and
    # what it holds was re-asserted
    eventually(fn -> dump(f1, reg)[{:client, client}] == {reg, f1.node} end)
    assert Attachment.replica(reg) == {reg, f1.node}
    assert dump(f1, reg)[{:reg, :held, self()}] == {1, client}
    assert {:ok, _} = Registry.register(reg, :after, 2)
  end

  @tag :fresh
  test "with no replica reachable, writes exit within their timeout", ctx do
    %{reg: reg, f1: f1, f2: f2} = ctx
    start(ctx, timeout: 300)
    {:ok, _} = Registry.register(reg, :k, 1)
    :peer.stop(f1.pid)
    :peer.stop(f2.pid)
    t0 = System.monotonic_time(:millisecond)
    assert {:noconnection, {Registry, :register, _}} = catch_exit(Registry.register(reg, :x, 1))
    assert System.monotonic_time(:millisecond) - t0 < 2_000
    assert Registry.lookup(reg, :k) == [{self(), 1}]
  end

  test "keys mismatch with an existing replica", ctx do
    %{reg: reg, f1: f1} = ctx

    {:ok, _} =
      peer_call(f1, GenServer, :call, [:hordec, {:registry_start, reg, [keys: :duplicate]}])

    Process.flag(:trap_exit, true)

    assert Registry.start_link(name: reg, keys: :unique, hordec: [f1.node]) ==
             {:error, {:keys_mismatch, :duplicate}}
  end
end
