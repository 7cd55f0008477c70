defmodule HordeC.StatusTest do
  # `mix horde_c.status`: the cluster's hordec nodes, replicas and sync state as tables, found from
  # one hordec node (following its peers) or from a BEAM node running :horde_c (its objects).
  use HordeC.InteropCase, async: false

  alias HordeC.Test.DaemonHelpers

  setup do
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(Mix.Shell.IO) end)
  end

  defp run_task(args) do
    Mix.Tasks.HordeC.Status.run(args)
    assert_received {:mix_shell, :info, [out]}
    out
  end

  defp row(out, cells),
    do: Enum.find(String.split(out, "\n"), &Enum.all?(cells, fn c -> &1 =~ c end))

  test "from one hordec node: every node of the mesh and the named replicas, in sync" do
    [h1, h2] = start_hordecs(2)
    reg = :"status_reg_#{System.unique_integer([:positive])}"
    start_supervised!({HordeC.Registry, name: reg, keys: :unique, hordec: [h1.node, h2.node]})
    {:ok, _} = HordeC.Registry.register(reg, "a", 1)

    eventually(fn ->
      HordeC.Status.collect([h1.node], replicas: [reg]).replicas |> length() == 2
    end)

    eventually(fn ->
      st = HordeC.Status.collect([h1.node], replicas: [reg])
      Enum.all?(st.replicas, &(&1.stats.idle and &1.stats.entries == 1))
    end)

    out = run_task([Atom.to_string(h1.node), "--replica", inspect(reg)])
    assert out =~ ~r/^hordec nodes\nnode\s+state\s+version\s+uptime\s+peers/
    assert row(out, [Atom.to_string(h1.node), " up "])
    assert row(out, [Atom.to_string(h2.node), " up "])
    assert row(out, [inspect(reg), "registry", Atom.to_string(h2.node), "1 entries", "in sync"])
    assert row(out, [inspect(reg), "registry", Atom.to_string(h1.node), "1 entries", "in sync"])
  end

  test "from a BEAM node of the app: its daemon and its objects are found by name" do
    reg = :"status_app_reg_#{System.unique_integer([:positive])}"
    crdt = :"status_app_crdt_#{System.unique_integer([:positive])}"

    tree = [
      HordeC.Daemon,
      {HordeC.Registry, name: reg, keys: :unique, hordec: :local},
      {HordeC.Crdt, name: crdt, hordec: :local}
    ]

    p = start_peer()
    {:ok, _} = peer_call(p, DaemonHelpers, :start_tree, [tree])
    hordec = peer_call(p, HordeC.Daemon, :local_node, [])
    peer_call(p, HordeC.Crdt, :put, [crdt, :k, :v])

    out = run_task([Atom.to_string(p.node)])
    assert row(out, [Atom.to_string(hordec), " up "])
    assert row(out, [inspect(reg), "registry", Atom.to_string(hordec)])
    assert row(out, [inspect(crdt), "crdt", Atom.to_string(hordec), "1 keys"])
    assert out =~ "BEAM nodes: #{p.node}"
  end

  test "a node that does not answer is listed as unreachable; bad arguments say how to call it" do
    out = run_task(["nobody_#{System.unique_integer([:positive])}@127.0.0.1"])
    assert out =~ ~r/nobody_\d+@127.0.0.1\s+unreachable/
    assert_raise Mix.Error, ~r/usage: mix horde_c.status NODE/, fn -> run_task([]) end
  end
end
