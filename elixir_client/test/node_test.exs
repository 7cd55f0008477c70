defmodule HordeC.NodeTest do
  @moduledoc "The control process and `HordeC.Node`: ping, hidden membership, info, errors."
  use HordeC.InteropCase, async: true

  setup_all do
    %{h: start_hordec()}
  end

  test "Node.ping/1 gets :pong, and the C node is hidden", %{h: h} do
    assert Node.ping(h.node) == :pong
    assert h.node in Node.list(:hidden)
    assert h.node in Node.list(:connected)
    refute h.node in Node.list()
  end

  test "HordeC.Node.ping/2 talks to the control process", %{h: h} do
    assert HordeC.Node.ping(h.node) == :pong
    assert ctl(h, :ping) == :pong
    # a node that does not exist
    assert HordeC.Node.ping(:"nobody_#{System.unique_integer([:positive])}@127.0.0.1", 1_000) ==
             :pang
  end

  test "HordeC.Node.echo/2 returns the term", %{h: h} do
    term = {:hello, [1, 2.5, "three", %{four: 4}]}
    assert HordeC.Node.echo(h.node, term) == {:ok, term}
  end

  test "info reports the documented fields", %{h: h} do
    assert {:ok, info} = HordeC.Node.info(h.node)
    assert info.version == "0.1.0"
    assert info.node == h.node
    assert info.os_pid == h.os_pid
    assert is_integer(info.uptime_ms) and info.uptime_ms >= 0
    assert node() in info.peers
    assert is_integer(info.rss_bytes) and info.rss_bytes > 0
    assert is_integer(info.processes) and info.processes >= 1
    assert is_integer(info.msgs_in) and info.msgs_in > 0
    assert is_integer(info.msgs_out) and info.msgs_out >= 0
    assert is_integer(info.ticktime) and info.ticktime > 0

    # the message counters move with traffic: one echo is one message in and one reply out
    assert {:ok, :x} = HordeC.Node.echo(h.node, :x)
    assert {:ok, later} = HordeC.Node.info(h.node)
    assert later.msgs_in >= info.msgs_in + 2
    assert later.msgs_out >= info.msgs_out + 1
  end

  test "--ticktime is reported in info" do
    h = start_hordec(ticktime: 7)
    assert info(h).ticktime == 7
  end

  test "unknown requests get an error reply, not a crash", %{h: h} do
    assert ctl(h, {:no_such_request, 1}) == {:error, {:unknown_request, {:no_such_request, 1}}}
    assert ctl(h, :bogus) == {:error, {:unknown_request, :bogus}}
    assert ctl(h, :ping) == :pong
  end

  test "plain messages to hordec are counted in msgs_in and dropped", %{h: h} do
    before = info(h).msgs_in
    for i <- 1..50, do: send({:hordec, h.node}, {:plain, i})
    # messages from one sender arrive in order, so the info call sees all 50 plus itself
    assert info(h).msgs_in >= before + 50
    assert ctl(h, :ping) == :pong
  end

  test "a call to an unknown name on the C node exits with :noproc in < 100 ms", %{h: h} do
    assert ctl(h, :ping) == :pong
    name = :"no_such_name_#{System.unique_integer([:positive])}"

    {micros, result} =
      :timer.tc(fn ->
        try do
          GenServer.call({name, h.node}, :hello, 5_000)
        catch
          :exit, reason -> {:exit, reason}
        end
      end)

    assert {:exit, {:noproc, {GenServer, :call, _}}} = result
    assert micros < 100_000, "noproc took #{div(micros, 1000)} ms"
    assert HordeC.Node.call(h.node, :ping) == {:ok, :pong}
  end

  test "bad arguments raise ArgumentError naming them", %{h: h} do
    for fun <- [
          fn -> HordeC.Node.ping("h1@127.0.0.1") end,
          fn -> HordeC.Node.info({:hordec, h.node}) end,
          fn -> HordeC.Node.echo(nil, :x) end,
          fn -> HordeC.Node.call(~c"node", :ping) end,
          fn -> HordeC.Node.server(1) end
        ] do
      assert_raise ArgumentError, ~r/expected node to be a node name \(an atom\), got: /, fun
    end

    for fun <- [
          fn -> HordeC.Node.ping(h.node, -1) end,
          fn -> HordeC.Node.echo(h.node, :x, :never) end,
          fn -> HordeC.Node.call(h.node, :ping, 1.5) end
        ] do
      assert_raise ArgumentError, ~r/expected timeout to be :infinity or a non-negative/, fun
    end
  end

  test "HordeC.Node.call/3 turns exits into error values", %{h: h} do
    assert HordeC.Node.call(
             :"nobody_#{System.unique_integer([:positive])}@127.0.0.1",
             :ping,
             1_000
           ) ==
             {:error, :noconnection}

    assert HordeC.Node.call(h.node, :ping) == {:ok, :pong}
  end
end
