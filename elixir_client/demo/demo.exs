# HordeC demo client: a mixed cluster seen from Elixir, and a smoke test of it.
#
#   elixir --name demo_a@127.0.0.1 --cookie COOKIE \
#          -pa elixir_client/_build/dev/lib/horde_c/ebin elixir_client/demo/demo.exs H1 [H2]
#
# H1, H2 are running hordec nodes. With one, only the first part runs (ping, echo, a C process);
# with two it goes on: a map replicated between them through a partition and its heal, then the
# registry seen from two Elixir nodes (this one, A, and B, which it starts with OTP's :peer), and
# last, H1 killed with kill -9 while processes registered through it live on.
#
# Every step prints what it does ("do") and what it sees ("see"). An expectation that does not
# hold raises Demo.Failed: the script exits non-zero, so the demo doubles as a smoke test.
# scripts/demo.sh does all of the above for you (build, epmd, the hordecs, this script, teardown).

defmodule Demo.Failed do
  defexception [:message]
end

defmodule Demo do
  def section(title),
    do: IO.puts("\n== #{title} " <> String.duplicate("=", max(0, 72 - String.length(title))))

  def show(label, value), do: IO.puts("  #{String.pad_trailing(label, 24)} #{value}")
  def doing(what), do: IO.puts("  do   #{what}")
  def seen(what), do: IO.puts("  see  #{what}")

  def mem(bytes) when bytes >= 1_048_576, do: "#{Float.round(bytes / 1_048_576, 1)} MiB"
  def mem(bytes), do: "#{Float.round(bytes / 1024, 1)} KiB"

  def ms(micros), do: "#{Float.round(micros / 1000, 1)} ms"

  @doc "Raises Demo.Failed (the script exits non-zero) unless `ok?`."
  def expect!(ok?, what, got) do
    ok? || raise Demo.Failed, "expected #{what}, got: #{inspect(got)}"
    got
  end

  @doc "`observe.()` must equal `want`; returns it."
  def expect_eq!(what, want, observe) do
    got = observe.()
    expect!(got === want, "#{what} to be #{inspect(want)}", got)
  end

  @doc """
  Calls `observe` until `pred` holds for its result (at most `timeout` ms); returns
  `{result, microseconds waited}`. Raises Demo.Failed with the last result otherwise.
  """
  def await!(what, observe, pred, timeout \\ 10_000) do
    t0 = System.monotonic_time(:microsecond)
    await(what, observe, pred, t0, t0 + timeout * 1000)
  end

  defp await(what, observe, pred, t0, deadline) do
    got = observe.()

    cond do
      pred.(got) ->
        {got, System.monotonic_time(:microsecond) - t0}

      System.monotonic_time(:microsecond) > deadline ->
        raise Demo.Failed,
              "#{what}: not within #{div(deadline - t0, 1000)} ms (last seen: #{inspect(got)})"

      true ->
        Process.sleep(5)
        await(what, observe, pred, t0, deadline)
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

  # Waits for an event the second node's listener forwarded (see Demo.Remote.start_listener/2).
  def await_event!(event, timeout) do
    receive do
      {:demo_listener, ^event} -> :ok
    after
      timeout ->
        raise Demo.Failed, "B's listener did not hear #{inspect(event)} within #{timeout} ms"
    end
  end

  # The events the second node's listener forwarded so far, oldest first.
  def listener_events do
    receive do
      {:demo_listener, event} -> [event | listener_events()]
    after
      0 -> []
    end
  end
end

# The modules below run on both Elixir nodes: their object code is loaded onto the second node
# with :code.load_binary/3 (a script's modules exist only in the memory of the node that ran it).
# `defmodule` returns the binary.

{:module, _, counter_beam, _} =
  defmodule Demo.Counter do
    @moduledoc "A GenServer that counts the calls it gets: its state shows it is the same process."
    use GenServer

    def init(n), do: {:ok, n}
    def handle_call(:bump, _from, n), do: {:reply, n + 1, n + 1}
  end

{:module, _, remote_beam, _} =
  defmodule Demo.Remote do
    @moduledoc "What the demo runs on an Elixir node through :erpc."

    # A start_link from an :erpc call would die with the call's process: a holder keeps it.
    def start_registry(opts) do
      caller = self()
      ref = make_ref()

      spawn(fn ->
        result = HordeC.Registry.start_link(opts)
        send(caller, {ref, result})
        if match?({:ok, _}, result), do: Process.sleep(:infinity)
      end)

      receive do
        {^ref, result} -> result
      after
        15_000 -> {:error, :start_timeout}
      end
    end

    # Not linked to the :erpc call's process, which ends right away.
    def start_counter(name), do: GenServer.start(Demo.Counter, 0, name: name)

    # A call by name, its exit reason returned as a value (so the caller can print it).
    def call(name, msg) do
      {:ok, GenServer.call(name, msg, 2_000)}
    catch
      :exit, {reason, {GenServer, :call, _}} -> {:exit, reason}
    end

    # A registry listener registered as `name` that forwards what it hears to `owner`.
    def start_listener(name, owner) do
      pid = spawn(fn -> forward(owner) end)
      Process.register(pid, name)
      pid
    end

    defp forward(owner) do
      receive do
        event -> send(owner, {:demo_listener, event})
      end

      forward(owner)
    end
  end

t_start = System.monotonic_time(:microsecond)

# The script runs with the client's ebin on the code path, not under Mix: start :horde_c ourselves
# (HordeC.Crdt keeps its per-name state in a table the application owns).
{:ok, _} = Application.ensure_all_started(:horde_c)

c_nodes = Enum.map(System.argv(), &String.to_atom/1)
c_nodes != [] || raise "usage: demo.exs HORDEC_NODE [HORDEC_NODE]"
[c_node | _] = c_nodes

Demo.section("who is who")
Demo.show("this BEAM node", node())
Demo.show("C nodes", Enum.join(c_nodes, ", "))

Demo.section("ping")
Demo.expect_eq!("ping #{c_node}", :pong, fn -> HordeC.Node.ping(c_node) end)
Demo.show("HordeC.Node.ping/1", ":pong")
Demo.show("visible nodes", inspect(Node.list()))
Demo.show("hidden nodes", inspect(Node.list(:hidden)))
Demo.expect!(c_node not in Node.list(), "#{c_node} not in Node.list/0", Node.list())
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
  Demo.expect_eq!("echo of #{inspect(term)}", {:ok, term}, fn ->
    HordeC.Node.echo(c_node, term)
  end)

  Demo.show("ok", inspect(term))
end

big = :crypto.strong_rand_bytes(1_000_000)
{micros, back} = :timer.tc(fn -> HordeC.Node.echo(c_node, big) end)
Demo.expect!(back === {:ok, big}, "the 1 MB binary back unchanged", byte_size(elem(back, 1)))
Demo.show("ok", "1 MB binary in #{Demo.ms(micros)}")

Demo.section("errors are values")
Demo.show("unknown request", inspect(HordeC.Node.call(c_node, :what_is_this)))

noproc =
  try do
    GenServer.call({:nobody_here, c_node}, :hello, 1_000)
  catch
    :exit, {reason, _} -> {:exit, reason}
  end

Demo.expect!(noproc == {:exit, :noproc}, "{:exit, :noproc}", noproc)
Demo.show("call to a missing name", inspect(noproc))

Demo.section("a C process, monitored from Elixir")
{:ok, cpid} = GenServer.call({:hordec, c_node}, :spawn_worker)
ref = Process.monitor(cpid)
Demo.show("spawned", inspect(cpid))

Demo.expect_eq!("the C process's echo", :hi_from_elixir, fn ->
  GenServer.call(cpid, {:echo, :hi_from_elixir})
end)

Demo.show("echo through it", ":hi_from_elixir")
:ok = GenServer.call(cpid, {:exit, {:shutdown, :demo_done}})
down = Demo.await_down(ref, cpid, 2_000)
Demo.expect!(down == {:ok, {:shutdown, :demo_done}}, "DOWN with {:shutdown, :demo_done}", down)
Demo.show("DOWN reason", inspect(elem(down, 1)))

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

if length(c_nodes) >= 2 do
  [h1, h2] = Enum.take(c_nodes, 2)

  # ---------------------------------------------------------------- a replicated map (HordeC.Crdt)

  Demo.section("a map replicated between two C nodes (HordeC.Crdt)")
  # One local process per replica, each attached to replica :inventory on its own C node.
  for {local, h} <- [inv1: h1, inv2: h2] do
    {:ok, _} = HordeC.Crdt.start_link(name: local, hordec: h, replica: :inventory)
    :ok = HordeC.Crdt.set_neighbours(local, for(n <- [h1, h2], do: {:inventory, n}))
  end

  Demo.doing("on #{h1}: put :apples => 3, :pears => 5")
  HordeC.Crdt.merge(:inv1, %{apples: 3, pears: 5})

  {seen, us} =
    Demo.await!(
      "the write on #{h2}",
      fn -> HordeC.Crdt.to_map(:inv2) end,
      &(&1 == %{apples: 3, pears: 5})
    )

  Demo.seen("on #{h2}: #{inspect(seen)}, #{Demo.ms(us)} later")

  Demo.section("partition: the two C nodes cannot see each other, both sides write")
  Demo.doing("block_peers on both sides")
  :ok = GenServer.call({:hordec, h1}, {:block_peers, [h2]})
  :ok = GenServer.call({:hordec, h2}, {:block_peers, [h1]})
  Demo.doing("on #{h1}: put :apples => 10, delete :pears;  on #{h2}: put :plums => 7")
  HordeC.Crdt.put(:inv1, :apples, 10) |> HordeC.Crdt.delete(:pears)
  HordeC.Crdt.put(:inv2, :plums, 7)

  Demo.expect_eq!("#{h1}'s side", %{apples: 10}, fn -> HordeC.Crdt.to_map(:inv1) end)

  Demo.expect_eq!("#{h2}'s side", %{apples: 3, pears: 5, plums: 7}, fn ->
    HordeC.Crdt.to_map(:inv2)
  end)

  Demo.seen("#{h1}: #{inspect(HordeC.Crdt.to_map(:inv1))}")
  Demo.seen("#{h2}: #{inspect(HordeC.Crdt.to_map(:inv2))}   (two different maps)")

  Demo.section("heal: both replicas converge, deletes and overwrites included")
  Demo.doing("unblock_peers on both sides")
  :ok = GenServer.call({:hordec, h1}, {:unblock_peers, [h2]})
  :ok = GenServer.call({:hordec, h2}, {:unblock_peers, [h1]})
  want = %{apples: 10, plums: 7}

  {_, us} =
    Demo.await!(
      "both replicas equal to #{inspect(want)}",
      fn -> Enum.map([:inv1, :inv2], &HordeC.Crdt.to_map/1) end,
      &(&1 == [want, want])
    )

  for {local, h} <- [inv1: h1, inv2: h2],
      do: Demo.seen("#{h}: #{inspect(HordeC.Crdt.to_map(local))}")

  Demo.seen("converged #{Demo.ms(us)} after the heal")

  Demo.section("10,000 keys written on one C node, read on the other")
  Demo.doing("on #{h1}: merge 10,000 keys")
  t0 = System.monotonic_time(:microsecond)
  HordeC.Crdt.merge(:inv1, Map.new(1..10_000, &{{:sku, &1}, &1}))
  Demo.await!("10,002 keys on #{h2}", fn -> HordeC.Crdt.stats(:inv2).keys end, &(&1 == 10_002))

  Demo.seen(
    "all 10,002 keys on #{h2}, #{Demo.ms(System.monotonic_time(:microsecond) - t0)} after the write began"
  )

  # Done with the map. (Its local processes are linked to this script and stop when their C node
  # goes: the last part kills one.)
  for local <- [:inv1, :inv2], do: :ok = GenServer.stop(local)

  # ---------------------------------------------------------------- the registry, two Elixir nodes

  alias HordeC.{Attachment, Registry}
  reg = DemoReg
  here = node()

  Demo.section("a second Elixir node")
  # The peer gets this node's code path minus OTP's own (so: Elixir and horde_c) and its cookie;
  # it is connected to this node and halts when this node goes away.
  # Named after this one: demo_a_N -> demo_b_N.
  [short, _host] = node() |> Atom.to_string() |> String.split("@")

  peer_name =
    case String.replace_prefix(short, "demo_a_", "demo_b_") do
      ^short -> short <> "_b"
      other -> other
    end

  otp = :code.root_dir()
  paths = for p <- :code.get_path(), not List.starts_with?(p, otp), p != ~c".", do: p

  {:ok, peer, there} =
    :peer.start_link(%{
      name: String.to_charlist(peer_name),
      host: ~c"127.0.0.1",
      longnames: true,
      args: [~c"-setcookie", Atom.to_charlist(Node.get_cookie()), ~c"-pa" | paths]
    })

  {:ok, _} = :erpc.call(there, Application, :ensure_all_started, [:horde_c])

  for {mod, beam} <- [{Demo.Counter, counter_beam}, {Demo.Remote, remote_beam}],
      do: {:module, ^mod} = :erpc.call(there, :code, :load_binary, [mod, ~c"demo.exs", beam])

  Demo.doing("started #{there} (OTP :peer), with the horde_c application")
  node_a = "A (#{here})"
  node_b = "B (#{there})"

  Demo.section("the registry on both Elixir nodes (HordeC.Registry)")
  # B's listener forwards every registry event it hears to this process.
  :erpc.call(there, Demo.Remote, :start_listener, [:demo_listener, self()])
  {:ok, _} = Registry.start_link(name: reg, keys: :unique, hordec: [h1, h2])

  {:ok, _} =
    :erpc.call(there, Demo.Remote, :start_registry, [
      [name: reg, keys: :unique, hordec: [h2, h1], listeners: [:demo_listener]]
    ])

  Demo.doing(
    "on A: HordeC.Registry.start_link(name: #{inspect(reg)}, keys: :unique, hordec: [h1, h2])"
  )

  Demo.doing("on B: the same with hordec: [h2, h1] and a listener")
  Demo.expect_eq!("A's replica", {reg, h1}, fn -> Attachment.replica(reg) end)

  Demo.expect_eq!("B's replica", {reg, h2}, fn ->
    :erpc.call(there, Attachment, :replica, [reg])
  end)

  Demo.seen("A is attached to the replica on #{h1}, B to the one on #{h2}")

  Demo.section("a GenServer named by the registry, called from the other node")
  via = {:via, Registry, {reg, "counter"}}
  Demo.doing("on A: GenServer.start(Demo.Counter, 0, name: #{inspect(via)})")
  {:ok, counter} = GenServer.start(Demo.Counter, 0, name: via)
  Demo.expect_eq!("whereis on A right after start", counter, fn -> GenServer.whereis(via) end)
  Demo.seen("on A: the name is #{inspect(counter)} as soon as start returns (read-your-writes)")

  {_, us} =
    Demo.await!(
      "the name on B",
      fn -> :erpc.call(there, GenServer, :whereis, [via]) end,
      &(&1 == counter)
    )

  Demo.seen("on B: the name is #{inspect(counter)}, #{Demo.ms(us)} later")

  for i <- 1..3 do
    Demo.expect_eq!("call #{i} from B", {:ok, i}, fn ->
      :erpc.call(there, Demo.Remote, :call, [via, :bump])
    end)
  end

  Demo.doing("on B: GenServer.call(#{inspect(via)}, :bump) three times")
  Demo.seen("replies 1, 2, 3: B found A's process by name (B's lookup reads its local mirror)")

  Demo.section("the GenServer dies: its name goes, everywhere")
  Demo.doing("on A: Process.exit(#{inspect(counter)}, :kill)")
  Process.exit(counter, :kill)

  {_, us_a} =
    Demo.await!("the name gone on A", fn -> Registry.lookup(reg, "counter") end, &(&1 == []))

  {_, us_b} =
    Demo.await!(
      "the name gone on B",
      fn -> :erpc.call(there, Registry, :lookup, [reg, "counter"]) end,
      &(&1 == [])
    )

  Demo.seen("lookup on A: [] after #{Demo.ms(us_a)}; lookup on B: [] after #{Demo.ms(us_b)}")

  Demo.await_event!({:unregister, reg, "counter", counter}, 5_000)

  Demo.seen("B's listener heard {:unregister, #{inspect(reg)}, \"counter\", #{inspect(counter)}}")

  Demo.expect_eq!("a call by name from B", {:exit, :noproc}, fn ->
    :erpc.call(there, Demo.Remote, :call, [via, :bump])
  end)

  Demo.seen("a call by name from B now exits with :noproc")

  Demo.section("kill -9 of a C node: live names survive")
  survivor = {:via, Registry, {reg, "survivor"}}
  b_side = {:via, Registry, {reg, "b-side"}}
  Demo.doing("on A: start Demo.Counter as \"survivor\" (registered through #{h1}, A's replica)")
  {:ok, surv} = GenServer.start(Demo.Counter, 0, name: survivor)
  Demo.doing("on B: start Demo.Counter as \"b-side\" (registered through #{h2}, B's replica)")
  {:ok, bpid} = :erpc.call(there, Demo.Remote, :start_counter, [b_side])

  names = fn node ->
    :erpc.call(node, Registry, :select, [reg, [{{:"$1", :"$2", :_}, [], [{{:"$1", :"$2"}}]}]])
  end

  want = Enum.sort([{"survivor", surv}, {"b-side", bpid}])

  for {label, n} <- [{node_a, here}, {node_b, there}],
      do: Demo.await!("both names on #{label}", fn -> Enum.sort(names.(n)) end, &(&1 == want))

  Demo.seen("both names on both nodes: #{inspect(want)}")

  for i <- 1..2 do
    Demo.expect_eq!("call #{i} from B", {:ok, i}, fn ->
      :erpc.call(there, Demo.Remote, :call, [survivor, :bump])
    end)
  end

  Demo.doing("on B: call \"survivor\" twice -> 1, 2")

  {:ok, %{os_pid: os_pid}} = HordeC.Node.info(h1)
  os_pid = to_string(os_pid)
  # Make sure this pid is that hordec before killing it.
  cmdline = File.read!("/proc/#{os_pid}/cmdline") |> String.replace(<<0>>, " ")

  Demo.expect!(
    cmdline =~ "hordec" and cmdline =~ Atom.to_string(h1),
    "pid #{os_pid} to be #{h1}",
    cmdline
  )

  _ = Demo.listener_events()

  Demo.doing(
    "kill -9 #{os_pid}   (#{h1}: A's replica, through which \"survivor\" was registered)"
  )

  {_, 0} = System.cmd("kill", ["-9", os_pid])
  t_kill = System.monotonic_time(:microsecond)

  # From the kill until A has failed over to h2 and 300 ms more, read both names on both nodes
  # over and over: a name that survives must never go missing on the way.
  watch = fn watch, reads, failed_over ->
    for {label, n} <- [{node_a, here}, {node_b, there}] do
      got = Enum.sort(names.(n))
      Demo.expect!(got == want, "both names on #{label} during the failover", got)
    end

    now = System.monotonic_time(:microsecond)

    failed_over = failed_over || (Attachment.replica(reg) == {reg, h2} && now - t_kill)

    cond do
      failed_over && now - t_kill > failed_over + 300_000 ->
        {reads, failed_over}

      now - t_kill > 10_000_000 ->
        raise Demo.Failed,
              "A did not fail over to #{h2} within 10 s: #{inspect(Attachment.replica(reg))}"

      true ->
        Process.sleep(2)
        watch.(watch, reads + 1, failed_over)
    end
  end

  {reads, failed_over} = watch.(watch, 1, nil)
  Demo.seen("A failed over to the replica on #{h2} #{Demo.ms(failed_over)} after the kill")

  Demo.seen(
    "both names were there in all #{reads} reads on each node, from the kill to 300 ms after the failover"
  )

  Demo.expect!(HordeC.Node.ping(h1) != :pong, "#{h1} to be gone", HordeC.Node.ping(h1))
  Demo.seen("#{h1} no longer answers ping")

  Demo.expect_eq!("\"survivor\" on A", [{surv, nil}], fn -> Registry.lookup(reg, "survivor") end)

  Demo.expect_eq!("\"survivor\" on B", [{surv, nil}], fn ->
    :erpc.call(there, Registry, :lookup, [reg, "survivor"])
  end)

  Demo.seen("\"survivor\" is still #{inspect(surv)} on A and on B")

  Demo.expect_eq!("a call by name from B", {:ok, 3}, fn ->
    :erpc.call(there, Demo.Remote, :call, [survivor, :bump])
  end)

  Demo.seen("on B: call \"survivor\" -> 3 (the same process, its state intact)")

  unregs = for {:unregister, _, _, _} = e <- Demo.listener_events(), do: e
  Demo.expect!(unregs == [], "no unregister heard by B's listener", unregs)
  Demo.seen("B's listener heard no unregister")

  Demo.doing("on A: start Demo.Counter as \"after-kill\" (through #{h2} now)")
  after_kill = {:via, Registry, {reg, "after-kill"}}
  {:ok, ak} = GenServer.start(Demo.Counter, 0, name: after_kill)

  {_, us} =
    Demo.await!(
      "\"after-kill\" on B",
      fn -> :erpc.call(there, GenServer, :whereis, [after_kill]) end,
      &(&1 == ak)
    )

  Demo.seen("on B: \"after-kill\" is #{inspect(ak)}, #{Demo.ms(us)} later")

  :ok = :peer.stop(peer)
end

IO.puts(
  "\ndemo passed: every expectation held (#{Demo.ms(System.monotonic_time(:microsecond) - t_start)})\n"
)
