# HordeC demo client: talks to a running hordec through HordeC.Node.
#
#   elixir --name demo_client@127.0.0.1 --cookie COOKIE \
#          -pa elixir_client/_build/dev/lib/horde_c/ebin elixir_client/demo/demo.exs demo_h1@127.0.0.1
#
# scripts/demo.sh does all of that for you (build, epmd, hordec, this script, teardown).

defmodule Demo do
  def section(title),
    do: IO.puts("\n== #{title} " <> String.duplicate("=", max(0, 60 - String.length(title))))

  def show(label, value), do: IO.puts("  #{String.pad_trailing(label, 24)} #{value}")

  def mem(bytes) when bytes >= 1_048_576, do: "#{Float.round(bytes / 1_048_576, 1)} MiB"
  def mem(bytes), do: "#{Float.round(bytes / 1024, 1)} KiB"

  # Polls `fun` until it returns true (at most 10 s).
  def eventually(fun, deadline \\ System.monotonic_time(:millisecond) + 10_000) do
    cond do
      fun.() ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        raise "the cluster did not converge in 10 s"

      true ->
        Process.sleep(5) && eventually(fun, deadline)
    end
  end

  # (kept in its own function: OTP 25.2's compiler trips over a monitor + receive in
  # top-level script code)
  def await_down(ref, pid, timeout) do
    receive do
      {:DOWN, ^ref, :process, ^pid, reason} -> {:ok, reason}
    after
      timeout -> :timeout
    end
  end
end

# The script runs with the client's ebin on the code path, not under Mix: start :horde_c ourselves
# (HordeC.Crdt keeps its per-name state in a table the application owns).
{:ok, _} = Application.ensure_all_started(:horde_c)

c_nodes = Enum.map(System.argv(), &String.to_atom/1)
c_nodes != [] || raise "usage: demo.exs HORDEC_NODE [HORDEC_NODE...]"
[c_node | _] = c_nodes

Demo.section("who is who")
Demo.show("this BEAM node", node())
Demo.show("C node", c_node)

Demo.section("ping")
Demo.show("HordeC.Node.ping/1", inspect(HordeC.Node.ping(c_node)))
Demo.show("visible nodes", inspect(Node.list()))
Demo.show("hidden nodes", inspect(Node.list(:hidden)))
IO.puts("  (a C node is a hidden peer: it never shows up in Node.list/0)")

Demo.section("echo: terms go through the C node and come back unchanged")

for term <- [
      42,
      -(2 ** 100),
      3.14,
      :"héllo_😀",
      "a UTF-8 string ✓",
      [1, 2 | :improper],
      {:tuple, [nested: %{map: true}]},
      <<1::3>>,
      self(),
      make_ref()
    ] do
  {:ok, back} = HordeC.Node.echo(c_node, term)
  Demo.show(if(back === term, do: "ok", else: "MISMATCH"), inspect(term))
end

big = :crypto.strong_rand_bytes(1_000_000)
{micros, {:ok, ^big}} = :timer.tc(fn -> HordeC.Node.echo(c_node, big) end)
Demo.show("ok", "1 MB binary in #{Float.round(micros / 1000, 1)} ms")

Demo.section("errors are values")
Demo.show("unknown request", inspect(HordeC.Node.call(c_node, :what_is_this)))

noproc =
  try do
    GenServer.call({:nobody_here, c_node}, :hello, 1_000)
  catch
    :exit, {reason, _} -> {:exit, reason}
  end

Demo.show("call to a missing name", inspect(noproc))

Demo.section("a C process, monitored from Elixir")
{:ok, cpid} = GenServer.call({:hordec, c_node}, :spawn_worker)
ref = Process.monitor(cpid)
Demo.show("spawned", inspect(cpid))
Demo.show("echo through it", inspect(GenServer.call(cpid, {:echo, :hi_from_elixir})))
:ok = GenServer.call(cpid, {:exit, {:shutdown, :demo_done}})

case Demo.await_down(ref, cpid, 2_000) do
  {:ok, reason} -> Demo.show("DOWN reason", inspect(reason))
  :timeout -> Demo.show("DOWN", "not received!")
end

Demo.section("info")
{:ok, info} = HordeC.Node.info(c_node)
Demo.show("version", info.version)
Demo.show("node", info.node)
Demo.show("os pid", info.os_pid)
Demo.show("uptime", "#{info.uptime_ms} ms")
Demo.show("peers", inspect(info.peers))
Demo.show("C processes", info.processes)
Demo.show("messages in / out", "#{info.msgs_in} / #{info.msgs_out}")
Demo.show("ticktime", "#{info.ticktime} s")
Demo.show("resident memory", Demo.mem(info.rss_bytes))

if length(c_nodes) >= 3 do
  [h1, h2, h3] = Enum.take(c_nodes, 3)

  Demo.section("a map replicated across three C nodes (HordeC.Crdt)")
  # One local process per replica, each attached to replica :inventory on its own C node.
  for {local, h} <- [inv1: h1, inv2: h2, inv3: h3] do
    {:ok, _} = HordeC.Crdt.start_link(name: local, hordec: h, replica: :inventory)
    :ok = HordeC.Crdt.set_neighbours(local, for(n <- [h1, h2, h3], do: {:inventory, n}))
  end

  Demo.show("on #{h1}", "put :apples => 3, :pears => 5")
  HordeC.Crdt.merge(:inv1, %{apples: 3, pears: 5})
  Demo.eventually(fn -> HordeC.Crdt.to_map(:inv3) == %{apples: 3, pears: 5} end)
  Demo.show("read on #{h3}", inspect(HordeC.Crdt.to_map(:inv3)))

  Demo.section("partition: #{h3} is cut off, writes go on")
  :ok = GenServer.call({:hordec, h3}, {:block_peers, [h1, h2]})
  for h <- [h1, h2], do: :ok = GenServer.call({:hordec, h}, {:block_peers, [h3]})
  HordeC.Crdt.put(:inv1, :apples, 10) |> HordeC.Crdt.delete(:pears)
  HordeC.Crdt.put(:inv3, :plums, 7)
  Demo.eventually(fn -> HordeC.Crdt.to_map(:inv2) == %{apples: 10} end)
  Demo.show("majority side (#{h2})", inspect(HordeC.Crdt.to_map(:inv2)))
  Demo.show("cut-off side (#{h3})", inspect(HordeC.Crdt.to_map(:inv3)))

  Demo.section("heal: every replica converges, deletes and overwrites included")

  {micros, :ok} =
    :timer.tc(fn ->
      :ok = GenServer.call({:hordec, h3}, {:unblock_peers, [h1, h2]})
      for h <- [h1, h2], do: :ok = GenServer.call({:hordec, h}, {:unblock_peers, [h3]})

      Demo.eventually(fn ->
        Enum.all?([:inv1, :inv2, :inv3], &(HordeC.Crdt.to_map(&1) == %{apples: 10, plums: 7}))
      end)
    end)

  for {local, h} <- [inv1: h1, inv2: h2, inv3: h3],
      do: Demo.show("#{h}", inspect(HordeC.Crdt.to_map(local)))

  Demo.show("converged", "#{Float.round(micros / 1000, 1)} ms after the heal")

  Demo.section("10,000 keys written on one C node, read on the others")

  {micros, :ok} =
    :timer.tc(fn ->
      HordeC.Crdt.merge(:inv1, Map.new(1..10_000, &{{:sku, &1}, &1}))

      Demo.eventually(fn -> Enum.all?([:inv2, :inv3], &(HordeC.Crdt.stats(&1).keys == 10_002)) end)
    end)

  Demo.show("visible on all three", "#{Float.round(micros / 1000, 1)} ms after the write began")
end

IO.puts("")
