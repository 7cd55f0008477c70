defmodule HordeC.CToCTest do
  @moduledoc """
  The C node as a *client*: hordec nodes connecting to each other (at start with
  `--connect`, or on request) and exchanging calls, and hordec calling BEAM processes.
  """
  use HordeC.InteropCase, async: true

  test "two hordec nodes connect and exchange calls both ways" do
    [h1, h2] = start_hordecs(2)
    assert h2.node in peers(h1)
    assert h1.node in peers(h2)

    for x <- [1, :atom, "bin", {:t, [1.5, %{k: :v}]}, :crypto.strong_rand_bytes(100_000)] do
      assert ctl(h1, {:call, h2.node, :hordec, {:echo, x}, 1_000}) == {:ok, x}
      assert ctl(h2, {:call, h1.node, :hordec, {:echo, x}, 1_000}) == {:ok, x}
    end

    assert {:ok, %{node: n2}} = ctl(h1, {:call, h2.node, :hordec, :info, 1_000})
    assert n2 == h2.node
  end

  test "a C-to-C call to a missing name fails with :noproc" do
    [h1, h2] = start_hordecs(2)
    assert ctl(h1, {:call, h2.node, :no_such_name, :x, 1_000}) == {:error, :noproc}
  end

  test "--connect at start connects to the given nodes" do
    h1 = start_hordec()
    h2 = start_hordec()
    h3 = start_hordec(connect: [h1, h2])

    eventually(fn -> [h1.node, h2.node] -- peers(h3) == [] end)
    eventually(fn -> h3.node in peers(h1) and h3.node in peers(h2) end)
    assert ctl(h3, {:call, h1.node, :hordec, {:echo, :via_connect}, 1_000}) == {:ok, :via_connect}
  end

  test "a call to an unreachable node fails with :noconnection" do
    h = start_hordec()
    nobody = :"#{unique_name("nobody")}@127.0.0.1"
    assert ctl(h, {:call, nobody, :hordec, :ping, 1_000}, 10_000) == {:error, :noconnection}
    assert ctl(h, {:connect, nobody}, 10_000) == {:error, :noconnection}
    assert ctl(h, :ping) == :pong
  end

  test "hordec calls a BEAM GenServer: reply, :noproc, :timeout" do
    h = start_hordec()
    name = :"echo_#{System.unique_integer([:positive])}"
    {:ok, srv} = EchoServer.start(name)
    on_exit(fn -> Process.exit(srv, :kill) end)

    assert ctl(h, {:call, node(), name, {:echo, {:from_c, [1]}}, 1_000}) == {:ok, {:from_c, [1]}}
    assert ctl(h, {:call, node(), :"missing_#{name}", :x, 1_000}) == {:error, :noproc}
    assert ctl(h, {:call, node(), name, :never_reply, 300}) == {:error, :timeout}
    # the C node is fine after a timeout, and a late reply does not confuse the next call
    assert ctl(h, {:call, node(), name, {:echo, :next}, 1_000}) == {:ok, :next}
  end

  test "hordec calls a GenServer on a peer node" do
    h = start_hordec()
    p = start_peer()
    {:ok, _} = peer_call(p, EchoServer, :start, [:peer_echo])

    assert ctl(h, {:call, p.node, :peer_echo, {:echo, "from C"}, 2_000}, 10_000) ==
             {:ok, "from C"}

    assert p.node in peers(h)
  end

  test "block_peers cuts and refuses links until unblocked" do
    [h1, h2] = start_hordecs(2)
    assert ctl(h1, {:block_peers, [h2.node]}) == :ok
    eventually(fn -> h2.node not in peers(h1) and h1.node not in peers(h2) end)
    assert {:error, _} = ctl(h1, {:call, h2.node, :hordec, :ping, 500}, 10_000)
    assert {:error, _} = ctl(h2, {:call, h1.node, :hordec, :ping, 500}, 10_000)

    assert ctl(h1, {:unblock_peers, [h2.node]}) == :ok
    assert ctl(h1, {:call, h2.node, :hordec, {:echo, :back}, 1_000}, 10_000) == {:ok, :back}
  end
end
