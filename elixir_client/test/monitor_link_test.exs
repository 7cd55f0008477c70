defmodule HordeC.MonitorLinkTest do
  @moduledoc """
  Monitors and links across the BEAM / C node boundary, in both directions, with the
  exit reasons users see.
  """
  use HordeC.InteropCase, async: true

  setup_all do
    %{h: start_hordec()}
  end

  defp spawn_worker(h) do
    assert {:ok, cpid} = ctl(h, :spawn_worker)
    assert is_pid(cpid) and node(cpid) == h.node
    cpid
  end

  describe "BEAM monitors C" do
    test "a C worker answers calls", %{h: h} do
      cpid = spawn_worker(h)
      assert GenServer.call(cpid, {:echo, {:hi, [1, 2]}}) == {:hi, [1, 2]}
      assert GenServer.call(cpid, {:echo, "again"}) == "again"
    end

    test "DOWN carries the worker's exit reason (call {:exit, r})", %{h: h} do
      cpid = spawn_worker(h)
      ref = Process.monitor(cpid)
      assert GenServer.call(cpid, {:exit, {:shutdown, :bye}}) == :ok
      assert_receive {:DOWN, ^ref, :process, ^cpid, {:shutdown, :bye}}, 2_000
    end

    test "DOWN carries the worker's exit reason (plain message {:exit, r})", %{h: h} do
      cpid = spawn_worker(h)
      ref = Process.monitor(cpid)
      send(cpid, {:exit, :boom})
      assert_receive {:DOWN, ^ref, :process, ^cpid, :boom}, 2_000
    end

    test "monitoring a dead C pid gives DOWN :noproc", %{h: h} do
      cpid = spawn_worker(h)
      ref = Process.monitor(cpid)
      send(cpid, {:exit, :normal})
      assert_receive {:DOWN, ^ref, :process, ^cpid, :normal}, 2_000

      ref2 = Process.monitor(cpid)
      assert_receive {:DOWN, ^ref2, :process, ^cpid, :noproc}, 2_000
    end

    test "calling a dead C pid exits :noproc", %{h: h} do
      cpid = spawn_worker(h)
      assert GenServer.call(cpid, {:exit, :normal}) == :ok
      assert {:noproc, _} = catch_exit(GenServer.call(cpid, {:echo, 1}, 2_000))
    end

    test "monitoring a name that does not exist gives DOWN :noproc", %{h: h} do
      name = :"missing_#{System.unique_integer([:positive])}"
      ref = Process.monitor({name, h.node})
      assert_receive {:DOWN, ^ref, :process, {^name, node}, :noproc}, 2_000
      assert node == h.node
    end

    test "a monitor on {:hordec, node} stays quiet while it lives", %{h: h} do
      ref = Process.monitor({:hordec, h.node})
      refute_receive {:DOWN, ^ref, _, _, _}, 200
      assert Process.demonitor(ref, [:flush])
      assert ctl(h, :ping) == :pong
    end

    test "many workers, each DOWN with its own reason", %{h: h} do
      workers = for i <- 1..50, do: {spawn_worker(h), i}
      refs = for {cpid, i} <- workers, do: {Process.monitor(cpid), cpid, i}
      for {cpid, i} <- workers, do: send(cpid, {:exit, {:reason, i}})

      for {ref, cpid, i} <- refs do
        assert_receive {:DOWN, ^ref, :process, ^cpid, {:reason, ^i}}, 2_000
      end
    end
  end

  describe "C monitors BEAM ({:watch, pid})" do
    test "death of the watched pid is reported with its reason", %{h: h} do
      pid = PeerHelpers.spawn_waiter()
      assert {:ok, ref} = ctl(h, {:watch, pid})
      send(pid, {:exit, {:shutdown, :gone}})
      assert_receive {:hordec_down, ^ref, ^pid, {:shutdown, :gone}}, 2_000
    end

    test "a killed pid is reported as :killed", %{h: h} do
      pid = PeerHelpers.spawn_waiter()
      assert {:ok, ref} = ctl(h, {:watch, pid})
      Process.exit(pid, :kill)
      assert_receive {:hordec_down, ^ref, ^pid, :killed}, 2_000
    end

    test "watching an already dead pid gives :noproc", %{h: h} do
      pid = spawn(fn -> :ok end)
      Process.monitor(pid) |> then(fn r -> assert_receive({:DOWN, ^r, _, _, _}) end)
      assert {:ok, ref} = ctl(h, {:watch, pid})
      assert_receive {:hordec_down, ^ref, ^pid, :noproc}, 2_000
    end

    test "a pid on a node that goes away is reported as :noconnection", %{h: h} do
      p = start_peer()
      pid = peer_call(p, PeerHelpers, :spawn_waiter, [])
      assert {:ok, ref} = ctl(h, {:watch, pid})
      # the peer connected to the C node for the monitor; now kill the peer
      eventually(fn -> p.node in peers(h) end)
      signal(p, "KILL")
      assert_receive {:hordec_down, ^ref, ^pid, :noconnection}, 5_000
    end

    test "a watch does not fire while the pid lives", %{h: h} do
      pid = PeerHelpers.spawn_waiter()
      assert {:ok, ref} = ctl(h, {:watch, pid})
      refute_receive {:hordec_down, ^ref, _, _}, 200
      send(pid, {:exit, :normal})
      assert_receive {:hordec_down, ^ref, ^pid, :normal}, 2_000
    end
  end

  describe "links" do
    test "C learns of a linked BEAM pid's exit", %{h: h} do
      pid = PeerHelpers.spawn_waiter()
      assert {:ok, cpid} = ctl(h, {:link, pid})
      assert is_pid(cpid) and node(cpid) == h.node
      send(pid, {:exit, :bye2})
      assert_receive {:hordec_exit, ^cpid, ^pid, :bye2}, 2_000
    end

    test "linking to a dead pid reports :noproc", %{h: h} do
      pid = spawn(fn -> :ok end)
      Process.monitor(pid) |> then(fn r -> assert_receive({:DOWN, ^r, _, _, _}) end)
      assert {:ok, cpid} = ctl(h, {:link, pid})
      assert_receive {:hordec_exit, ^cpid, ^pid, :noproc}, 2_000
    end

    test "killing the C process sends the exit signal to the linked BEAM pid", %{h: h} do
      pid = PeerHelpers.spawn_trapping_forwarder(self())
      assert {:ok, cpid} = ctl(h, {:link, pid})
      eventually(fn -> cpid in elem(Process.info(pid, :links), 1) end)
      Process.exit(cpid, :kill)
      assert_receive {:forwarded, ^pid, {:EXIT, ^cpid, :killed}}, 2_000
    end

    test "a non-trapping BEAM pid dies with the killed C process", %{h: h} do
      pid = PeerHelpers.spawn_waiter()
      ref = Process.monitor(pid)
      assert {:ok, cpid} = ctl(h, {:link, pid})
      eventually(fn -> cpid in elem(Process.info(pid, :links), 1) end)
      Process.exit(cpid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}, 2_000
    end
  end
end
