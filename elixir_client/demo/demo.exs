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

[c_node_str | _] = System.argv() ++ [nil]
c_node_str || raise "usage: demo.exs HORDEC_NODE"
c_node = String.to_atom(c_node_str)

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
IO.puts("")
