defmodule HordeC.HordecRegistryTest do
  @moduledoc """
  The registry replica in real hordec nodes, spoken to with its raw protocol (docs/registry.md),
  no client library: `--registry` and the control calls, membership that spreads from one call,
  attach/register/monitoring, the change stream, C processes registered through the public C API
  (`{registry_demo, Reg, Key}`) looked up and called from Elixir, and a conflict across a healed
  partition ending with exactly one `name_conflict` exit.
  """
  use HordeC.InteropCase, async: false

  @converge 10_000

  defp rcall(h, req, reg \\ :reg), do: GenServer.call({reg, node_of(h)}, req, 5_000)

  defp members(hs), do: Enum.sort(for h <- hs, do: {:reg, h.node})

  # Replicas on `n` hordec nodes, started with --registry; membership set with ONE call, on the first.
  defp cluster(n, extra \\ []) do
    hs = start_hordecs(n, args: ["--registry", "reg"] ++ extra)
    assert rcall(hd(hs), {:set_members, members(hs)}) == :ok
    for h <- hs, do: eventually(fn -> rcall(h, :members) == members(hs) end, @converge)
    hs
  end

  # A process standing in for a HordeC.Registry client: attaches, then stays alive until told.
  defp fake_client(h) do
    test = self()

    pid =
      spawn(fn ->
        send(test, {:attached, self(), rcall(h, {:attach, self(), []})})

        receive do
          :stop -> :ok
        end
      end)

    assert_receive {:attached, ^pid, {:ok, %{keys: :unique, replica: replica}}}
    assert is_pid(replica) and node(replica) == h.node
    pid
  end

  defp sleeper, do: spawn(fn -> Process.sleep(:infinity) end)

  test "--registry, registry_start and registry_stop" do
    h = start_hordec(args: ["--registry", "reg", "--registry", "dup:duplicate"])
    assert rcall(h, :members) == [{:reg, h.node}]
    assert rcall(h, :members, :dup) == [{:dup, h.node}]
    assert {:ok, pid} = ctl(h, {:registry_start, :reg, []})
    assert node(pid) == h.node
    assert {:ok, ^pid} = ctl(h, {:registry_start, :reg, [keys: :unique]})

    assert ctl(h, {:registry_start, :reg, [keys: :duplicate]}) ==
             {:error, {:keys_mismatch, :unique}}

    assert ctl(h, {:registry_start, :dup, [keys: :unique]}) ==
             {:error, {:keys_mismatch, :duplicate}}

    assert ctl(h, {:registry_start, :other, [bogus: 1]}) == {:error, {:bad_option, {:bogus, 1}}}

    assert ctl(h, {:registry_start, :other, [keys: :maybe]}) ==
             {:error, {:bad_option, {:keys, :maybe}}}

    assert ctl(h, {:registry_start, :other, :notalist}) == {:error, {:bad_option, :notalist}}

    assert {:ok, p2} =
             ctl(
               h,
               {:registry_start, :other,
                [keys: :duplicate, flush_interval_ms: 2, stream_batch_bytes: 4096]}
             )

    assert %{keys: :duplicate, members: 1} = rcall(h, :stats, :other)
    assert ctl(h, {:registry_stop, :other}) == :ok
    _ = p2
    eventually(fn -> ctl(h, {:registry_stop, :other}) == {:error, :not_found} end)
    assert {:ok, _} = ctl(h, {:crdt_start, :a_map, []})
    assert ctl(h, {:registry_start, :a_map, []}) == {:error, :name_taken}
    assert ctl(h, {:registry_stop, :a_map}) == {:error, :not_found}
    # every request is answered; bad ones with {error, badarg}
    assert rcall(h, {:register, :k, :notapid, :v, self()}) == {:error, :badarg}
    assert rcall(h, :frobnicate) == {:error, :badarg}
  end

  test "hordec --registry rejects a bad kind" do
    r = run_hordec(["--name", "x@127.0.0.1", "--cookie", "c", "--registry", "reg:sometimes"])
    assert r.status == 2
    assert r.stderr =~ "--registry wants NAME, NAME:unique or NAME:duplicate"
  end

  test "one set_members call anywhere reaches every replica, and entries replicate" do
    [h1, h2, h3] = cluster(3)
    c = fake_client(h1)
    p = sleeper()
    assert {:ok, replica} = rcall(h1, {:register, {:name, 1}, p, %{v: 1}, c})
    assert node(replica) == h1.node

    for h <- [h1, h2, h3],
        do: eventually(fn -> rcall(h, {:lookup, {:name, 1}}) == [{p, %{v: 1}}] end, @converge)

    assert rcall(h2, {:register, {:name, 1}, sleeper(), :x, c}) ==
             {:error, {:already_registered, p}}

    assert rcall(h3, {:update_value, {:name, 1}, p, %{v: 2}}) == :ok

    for h <- [h1, h2],
        do: eventually(fn -> rcall(h, {:lookup, {:name, 1}}) == [{p, %{v: 2}}] end, @converge)

    # the client dies: the replica it is attached to removes its entries, everywhere
    send(c, :stop)

    for h <- [h1, h2, h3],
        do: eventually(fn -> rcall(h, {:lookup, {:name, 1}}) == [] end, @converge)
  end

  # Waits until every diff of `wants` has arrived on the stream (in any batches).
  defp await_diffs(_epoch, []), do: :ok

  defp await_diffs(epoch, wants) do
    receive do
      {:hordec_stream, :reg, ^epoch, _, {:diffs, ds}} -> await_diffs(epoch, wants -- ds)
    after
      5_000 -> flunk("diffs never arrived: #{inspect(wants)}")
    end
  end

  test "the change stream carries the observable map" do
    [h] = cluster(1)
    assert {:ok, epoch} = rcall(h, {:stream_subscribe, self()})
    assert_receive {:hordec_stream, :reg, ^epoch, 1, {:snapshot, snap, false}}
    assert {{:member, {:reg, h.node}}, true} in snap
    c = fake_client(h)
    p = sleeper()
    assert {:ok, _} = rcall(h, {:register, "key", p, :val, c})

    await_diffs(epoch, [{:add, {:client, c}, {:reg, h.node}}, {:add, {:reg, "key", p}, {:val, c}}])

    assert rcall(h, {:pids_down, c, [p]}) == :ok
    await_diffs(epoch, [{:remove, {:reg, "key", p}}])
    assert rcall(h, {:put_meta, :color, :blue}) == :ok
    await_diffs(epoch, [{:add, {:meta, :color}, :blue}])
  end

  test "C processes register through the C API; Elixir finds and calls them; their exit unregisters them" do
    [h1, h2] = cluster(2)
    assert {:ok, cp} = ctl(h1, {:registry_demo, :reg, {:svc, 1}})
    assert node(cp) == h1.node

    eventually(
      fn -> rcall(h2, {:lookup, {:svc, 1}}) == [{cp, {:hordec_demo, h1.node}}] end,
      @converge
    )

    # called by name, as a via-tuple lookup would
    [{found, _}] = rcall(h2, {:lookup, {:svc, 1}})
    assert GenServer.call(found, :ping) == :pong
    assert GenServer.call(found, {:echo, [1, "two"]}) == [1, "two"]
    # the C API from the C process: lookup, one more name, unregister
    assert GenServer.call(cp, {:lookup, {:svc, 1}}) == [{cp, {:hordec_demo, h1.node}}]
    assert GenServer.call(cp, {:register, :extra}) == :ok

    eventually(
      fn -> rcall(h2, {:lookup, :extra}) == [{cp, {:hordec_demo, h1.node}}] end,
      @converge
    )

    assert GenServer.call(cp, {:unregister, :extra}) == :ok
    assert GenServer.call(cp, {:lookup, :extra}) == []
    # taken: a second C process asking for the same key is told who holds it
    assert ctl(h1, {:registry_demo, :reg, {:svc, 1}}) == {:error, {:already_registered, cp}}
    assert ctl(h1, {:registry_demo, :no_such_registry, :k}) == {:error, :noproc}
    # the replica of its node monitors it: when it exits, the name goes everywhere
    ref = Process.monitor(cp)
    assert GenServer.call(cp, :stop) == :ok
    assert_receive {:DOWN, ^ref, :process, ^cp, :normal}
    for h <- [h1, h2], do: eventually(fn -> rcall(h, {:lookup, {:svc, 1}}) == [] end, @converge)
  end

  test "the same key registered on both sides of a partition: one winner, the loser exited once" do
    [h1, h2] = cluster(2)
    assert ctl(h1, {:block_peers, [h2.node]}) == :ok
    assert ctl(h2, {:block_peers, [h1.node]}) == :ok
    eventually(fn -> h2.node not in peers(h1) end)
    assert {:ok, c1} = ctl(h1, {:registry_demo, :reg, :contested})
    Process.sleep(20)
    assert {:ok, c2} = ctl(h2, {:registry_demo, :reg, :contested})
    r1 = Process.monitor(c1)
    r2 = Process.monitor(c2)
    assert ctl(h1, {:unblock_peers, [h2.node]}) == :ok
    assert ctl(h2, {:unblock_peers, [h1.node]}) == :ok
    # c2 registered later (hybrid logical clock): c1 loses, told by its own node's replica
    assert_receive {:DOWN, ^r1, :process, ^c1, reason}, @converge
    assert reason == {:name_conflict, {:contested, {:hordec_demo, h1.node}}, :reg, c2}

    for h <- [h1, h2],
        do:
          eventually(
            fn -> rcall(h, {:lookup, :contested}) == [{c2, {:hordec_demo, h2.node}}] end,
            @converge
          )

    refute_receive {:DOWN, ^r2, _, _, _}, 500
    assert GenServer.call(c2, :ping) == :pong
  end
end
