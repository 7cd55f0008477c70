defmodule HordeC.FailureDetectionTest do
  @moduledoc """
  Failure detection in both directions. Not async: the bounds below are behaviour
  ("within ticktime"), and a loaded machine should not make them flaky.
  """
  use HordeC.InteropCase, async: false

  test "kill -9 of hordec: the BEAM sees nodedown within 1 s, monitors fire :noconnection" do
    h = start_hordec()
    assert Node.ping(h.node) == :pong
    {:ok, cpid} = ctl(h, :spawn_worker)
    mref = Process.monitor(cpid)

    :ok = :net_kernel.monitor_nodes(true, node_type: :all)
    on_exit(fn -> :net_kernel.monitor_nodes(false, node_type: :all) end)

    t0 = System.monotonic_time(:millisecond)
    signal(h, "KILL")
    hnode = h.node
    assert_receive {:nodedown, ^hnode, info}, 1_000
    assert info[:node_type] == :hidden
    assert_receive {:DOWN, ^mref, :process, ^cpid, :noconnection}, 1_000
    assert System.monotonic_time(:millisecond) - t0 <= 1_000
    refute h.node in Node.list(:hidden)
  end

  @tag timeout: 60_000
  test "a SIGSTOPped BEAM peer is dropped by hordec within its ticktime" do
    ticktime = 4
    h = start_hordec(ticktime: ticktime)
    p = start_peer(ticktime: ticktime)

    assert peer_call(p, Node, :ping, [h.node]) == :pong
    assert p.node in peers(h)

    # While the peer runs normally, its ticks keep the link up for longer than a ticktime.
    # (Polling also keeps the runner's own link to hordec busy: the runner's ticktime is 60.)
    # The sleep is the thing under test here: time passes and nothing happens.
    for _ <- 1..((ticktime + 1) * 10) do
      Process.sleep(100)
      assert p.node in peers(h)
    end

    signal(p, "STOP")
    on_exit(fn -> if os_alive?(p.os_pid), do: System.cmd("kill", ["-CONT", "#{p.os_pid}"]) end)
    t0 = System.monotonic_time(:millisecond)

    diagnose(h, fn ->
      eventually(fn -> p.node not in peers(h) end, (ticktime + 5) * 1_000, 100)
    end)

    elapsed = System.monotonic_time(:millisecond) - t0
    assert elapsed <= (ticktime + 2) * 1_000, "hordec took #{elapsed} ms to drop a stopped peer"

    signal(p, "CONT")
    assert ctl(h, :ping) == :pong
  end

  test "a BEAM peer that halts is dropped at once and its watches fire :noconnection" do
    h = start_hordec()
    p = start_peer()
    pid = peer_call(p, PeerHelpers, :spawn_waiter, [])
    assert {:ok, ref} = ctl(h, {:watch, pid})
    # the watch made hordec connect to the peer
    eventually(fn -> p.node in peers(h) end)

    peer_cast(p, :erlang, :halt, [])
    assert_receive {:hordec_down, ^ref, ^pid, :noconnection}, 2_000
    eventually(fn -> p.node not in peers(h) end, 2_000)
  end
end
