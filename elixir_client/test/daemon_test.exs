defmodule HordeC.DaemonTest do
  # HordeC.Daemon: a hordec owned by a BEAM node (cookie through a pipe, derived name, logs to
  # Logger, restarted when it dies, gone with its node), `hordec: :local` and the application
  # environment default, and discovery of the other BEAM nodes' daemons.
  use HordeC.InteropCase, async: false

  import ExUnit.CaptureLog
  alias HordeC.Test.DaemonHelpers

  defp os_pid!, do: HordeC.Daemon.status().os_pid

  defp unique_atom(prefix), do: :"#{prefix}_#{System.unique_integer([:positive])}"

  test "runs hordec under this node's derived name and cookie, which is not on its command line" do
    start_supervised!(HordeC.Daemon)
    [name, host] = node() |> Atom.to_string() |> String.split("@")
    hordec = :"hordec_#{name}@#{host}"

    assert HordeC.Daemon.local_node() == hordec
    assert HordeC.Daemon.status().node == hordec
    assert HordeC.Node.ping(hordec) == :pong
    assert {:ok, %{node: ^hordec}} = HordeC.Node.info(hordec)

    cmdline = File.read!("/proc/#{os_pid!()}/cmdline") |> String.split(<<0>>)
    refute Enum.any?(cmdline, &String.contains?(&1, Atom.to_string(Node.get_cookie())))
    assert ["--cookie-file", "-"] in Enum.chunk_every(cmdline, 2, 1)
    assert "--watch-stdin" in cmdline
  end

  test "forwards hordec's log lines to Logger at their level" do
    log =
      capture_log(fn ->
        start_supervised!({HordeC.Daemon, log_level: :debug})
        hordec = HordeC.Daemon.local_node()
        assert HordeC.Node.ping(hordec) == :pong
        stop_supervised!(HordeC.Daemon)
      end)

    assert log =~ ~r/\[info\].*hordec_\S+: node \S+ listening on port/s
    assert log =~ ~r/hordec_\S+: shutting down \(SIGTERM\)/
  end

  test "a daemon that dies is restarted; stopping it leaves no hordec" do
    start_supervised!(HordeC.Daemon)
    first = os_pid!()
    hordec = HordeC.Daemon.local_node()

    capture_log(fn ->
      signal(first, "KILL")
      eventually(fn -> HordeC.Daemon.status() != nil and os_pid!() != first end, 10_000)
    end)

    second = os_pid!()
    refute os_alive?(first)
    assert HordeC.Node.ping(hordec) == :pong

    stop_supervised!(HordeC.Daemon)
    refute os_alive?(second)
    assert HordeC.Daemon.status() == nil
  end

  test "hordec: :local and the application environment default attach to this node's daemon" do
    start_supervised!(HordeC.Daemon)
    hordec = HordeC.Daemon.local_node()

    crdt = unique_atom(:daemon_crdt)
    start_supervised!({HordeC.Crdt, name: crdt, hordec: :local})
    assert HordeC.Crdt.replica(crdt) == {crdt, hordec}
    HordeC.Crdt.put(crdt, :k, 1)
    assert HordeC.Crdt.get(crdt, :k) == 1

    reg = unique_atom(:daemon_reg)
    start_supervised!({HordeC.Registry, name: reg, keys: :unique, hordec: :local})
    assert HordeC.Attachment.hordecs(reg) == [hordec]
    assert {:ok, _} = HordeC.Registry.register(reg, :me, :v)
    assert HordeC.Registry.lookup(reg, :me) == [{self(), :v}]

    previous = Application.fetch_env(:horde_c, :hordec)
    Application.put_env(:horde_c, :hordec, :local)

    on_exit(fn ->
      case previous do
        {:ok, v} -> Application.put_env(:horde_c, :hordec, v)
        :error -> Application.delete_env(:horde_c, :hordec)
      end
    end)

    reg2 = unique_atom(:daemon_reg_env)
    start_supervised!({HordeC.Registry, name: reg2, keys: :duplicate}, id: :reg2)
    assert HordeC.Attachment.hordecs(reg2) == [hordec]

    sup = unique_atom(:daemon_sup)
    start_supervised!({HordeC.DynamicSupervisor, name: sup, strategy: :one_for_one}, id: :sup)
    assert HordeC.Attachment.hordecs(sup) == [hordec]

    crdt2 = unique_atom(:daemon_crdt_env)
    start_supervised!({HordeC.Crdt, name: crdt2}, id: :crdt2)
    assert HordeC.Crdt.replica(crdt2) == {crdt2, hordec}
  end

  test "without a distributed node, :local says what is missing" do
    # Resolved on this (distributed) node it works; the derivation is what raises elsewhere.
    assert {node, true} = HordeC.Daemon.resolve(:local)
    assert node == HordeC.Daemon.local_node()
    assert {[^node, :other@host], true} = HordeC.Daemon.resolve([:local, :other@host])
    assert {:h@host, false} = HordeC.Daemon.resolve(:h@host)
  end

  test "the daemons of connected BEAM nodes find each other: one registry, map and supervisor" do
    reg = unique_atom(:disc_reg)
    crdt = unique_atom(:disc_crdt)
    sup = unique_atom(:disc_sup)

    tree = [
      HordeC.Daemon,
      {HordeC.Registry, name: reg, keys: :unique, hordec: :local},
      {HordeC.Crdt, name: crdt, hordec: :local},
      {HordeC.DynamicSupervisor, name: sup, strategy: :one_for_one, hordec: :local}
    ]

    [p1, p2] = for _ <- 1..2, do: start_peer()
    for p <- [p1, p2], do: assert({:ok, _} = peer_call(p, DaemonHelpers, :start_tree, [tree]))
    h1 = peer_call(p1, HordeC.Daemon, :local_node, [])
    h2 = peer_call(p2, HordeC.Daemon, :local_node, [])

    # The peers are both connected to the runner; connecting them to each other is the
    # application's cluster forming (libcluster or the like).
    assert peer_call(p1, Node, :connect, [p2.node])

    eventually(fn -> peer_call(p1, HordeC.Daemon, :peers, []) == [h2] end, 10_000)
    eventually(fn -> peer_call(p2, HordeC.Daemon, :peers, []) == [h1] end, 10_000)
    members = Enum.sort([{reg, h1}, {reg, h2}])
    eventually(fn -> peer_call(p1, HordeC.Cluster, :members, [reg]) == members end, 10_000)
    eventually(fn -> peer_call(p2, HordeC.Cluster, :members, [reg]) == members end, 10_000)

    pid = peer_call(p1, DaemonHelpers, :register_new, [reg, "job"])
    eventually(fn -> peer_call(p2, HordeC.Registry, :lookup, [reg, "job"]) == [{pid, nil}] end)

    peer_call(p2, HordeC.Crdt, :put, [crdt, :from_p2, 42])
    eventually(fn -> peer_call(p1, HordeC.Crdt, :get, [crdt, :from_p2]) == 42 end)

    sup_members = fn p -> peer_call(p, HordeC.Cluster, :members, [sup]) end
    eventually(fn -> {sup, h1} in sup_members.(p2) and {sup, h2} in sup_members.(p1) end, 10_000)

    # p1 killed with its daemon: nobody is left to remove what p1's processes registered through
    # it, so p2's daemon removes p1's replica from the members, and the registration goes.
    signal(p1.os_pid, "KILL")
    eventually(fn -> peer_call(p2, HordeC.Registry, :lookup, [reg, "job"]) == [] end, 20_000)
    eventually(fn -> peer_call(p2, HordeC.Cluster, :members, [reg]) == [{reg, h2}] end, 20_000)
    assert peer_call(p2, HordeC.Crdt, :get, [crdt, :from_p2]) == 42
  end

  test "kill -9 of the BEAM node leaves no hordec behind" do
    p = start_peer()
    assert {:ok, _} = peer_call(p, DaemonHelpers, :start_tree, [[HordeC.Daemon]])
    %{os_pid: hordec_pid, node: hordec} = peer_call(p, HordeC.Daemon, :status, [])
    assert os_alive?(hordec_pid)
    assert HordeC.Node.ping(hordec) == :pong

    signal(p.os_pid, "KILL")
    eventually(fn -> not os_alive?(p.os_pid) end, 5_000)
    # hordec sees its stdin close, shuts down as on SIGTERM (handoff included: up to 3 s).
    eventually(fn -> not os_alive?(hordec_pid) end, 10_000)
  end
end
