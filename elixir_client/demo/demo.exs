# HordeC demo client: a mixed cluster seen from Elixir, and a smoke test of it.
#
#   elixir --name demo_a@127.0.0.1 --cookie COOKIE \
#          -pa elixir_client/_build/dev/lib/horde_c/ebin elixir_client/demo/demo.exs H1 [H2]
#
# H1, H2 are running hordec nodes. With one, only the first part runs (ping, echo, a C process);
# with two it goes on: a map replicated between them through a partition and its heal, then the
# registry seen from two Elixir nodes (this one, A, and B, which it starts with OTP's :peer), then a
# supervisor on both (HordeC.DynamicSupervisor) with C workers on the two C nodes and GenServers on
# A and B; then H1 killed with kill -9: processes registered through it live on, and its C workers
# come back on H2; last, B killed with kill -9: its children come back on A, and every permanent
# child runs exactly once.
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

defmodule Demo.Sup do
  @moduledoc """
  The supervisor part's helpers, on A: which_children read locally, each child's label (its
  argument, asked from the child itself), and a watcher that prints changes as they happen.
  """
  alias HordeC.DynamicSupervisor, as: DSup

  # which_children on this node: [{pid | :restarting, modules}]
  def rows(sup), do: for({_, pid, _, mods} <- DSup.which_children(sup), do: {pid, mods})

  @doc "The label a child was started with: echo answers :get_arg, kv {:get, :label}, BEAM :label."
  def label(pid, [HordeC.CWorker]) do
    case call(pid, :get_arg) do
      {:ok, label} when is_binary(label) ->
        label

      _ ->
        case call(pid, {:get, :label}) do
          {:ok, {:ok, label}} -> label
          _ -> nil
        end
    end
  end

  def label(pid, _mods) do
    case call(pid, :label) do
      {:ok, label} -> label
      _ -> nil
    end
  end

  defp call(pid, req) do
    if node(pid) == node() or node(pid) in Node.list(:connected),
      do: {:ok, GenServer.call(pid, req, 1_000)},
      else: :error
  catch
    :exit, _ -> :error
  end

  @doc """
  Polls which_children on this node every 5 ms and prints, with the time since `t0` (monotonic
  µs), every child that appears (label, node, pid), every one that is no longer listed, and how
  many are being handed over (`:restarting`). `known` is %{pid => label} at the start. Returns
  `{known, µs since t0}` once `done?.(known, restarting)` holds; raises Demo.Failed after
  `timeout` ms.
  """
  def watch(sup, known, t0, names, done?, timeout) do
    loop(sup, known, 0, t0, names, done?, t0 + timeout * 1000)
  end

  defp loop(sup, known, restarting, t0, names, done?, deadline) do
    rows = rows(sup)
    now = System.monotonic_time(:microsecond)
    running = for {pid, mods} <- rows, is_pid(pid), do: {pid, mods}
    listed = MapSet.new(running, &elem(&1, 0))

    gone = for {pid, label} <- known, not MapSet.member?(listed, pid), do: {pid, label}

    for {pid, label} <- gone,
        do: at(now - t0, "#{label} on #{where(names, pid)} no longer listed")

    known = Map.drop(known, Enum.map(gone, &elem(&1, 0)))

    known =
      Enum.reduce(running, known, fn {pid, mods}, acc ->
        if Map.has_key?(acc, pid) do
          acc
        else
          label = label(pid, mods) || "?"
          at(now - t0, "#{label} runs on #{where(names, pid)}")
          Map.put(acc, pid, label)
        end
      end)

    r = Enum.count(rows, &(elem(&1, 0) == :restarting))
    if r != restarting, do: at(now - t0, "#{r} child(ren) listed as :restarting")

    cond do
      done?.(known, r) ->
        {known, now - t0}

      now > deadline ->
        raise Demo.Failed,
              "which_children on A did not settle within #{div(deadline - t0, 1000)} ms " <>
                "(last seen: #{inspect(Enum.sort(Map.values(known)))}, #{r} restarting)"

      true ->
        Process.sleep(5)
        loop(sup, known, r, t0, names, done?, deadline)
    end
  end

  def where(names, pid), do: "#{Map.get(names, node(pid), node(pid))} (#{inspect(pid)})"

  defp at(us, what),
    do: IO.puts("  see  +#{String.pad_leading(Demo.ms(us), 9)}  which_children on A: #{what}")
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

{:module, _, sup_worker_beam, _} =
  defmodule Demo.SupWorker do
    @moduledoc "A BEAM child of the demo's supervisor: a GenServer that answers :label with its argument."
    use GenServer

    def start_link(label), do: GenServer.start_link(__MODULE__, label)
    def init(label), do: {:ok, label}
    def handle_call(:label, _from, label), do: {:reply, label, label}
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

    # The same for the supervisor's member on this node.
    def start_sup(opts) do
      caller = self()
      ref = make_ref()

      spawn(fn ->
        result = HordeC.DynamicSupervisor.start_link(opts)
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

  for {mod, beam} <- [
        {Demo.Counter, counter_beam},
        {Demo.SupWorker, sup_worker_beam},
        {Demo.Remote, remote_beam}
      ],
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

  # ---------------------------------------------------------------- the supervisor, C and BEAM children

  alias HordeC.DynamicSupervisor, as: DSup
  sup = DemoSup
  nick = %{h1 => "h1", h2 => "h2", here => "A", there => "B"}

  Demo.section("a supervisor on both Elixir nodes (HordeC.DynamicSupervisor)")
  {:ok, _} = DSup.start_link(name: sup, strategy: :one_for_one, hordec: [h1, h2])

  {:ok, _} =
    :erpc.call(there, Demo.Remote, :start_sup, [
      [name: sup, strategy: :one_for_one, hordec: [h2, h1]]
    ])

  Demo.doing(
    "on A: HordeC.DynamicSupervisor.start_link(name: #{inspect(sup)}, strategy: :one_for_one, hordec: [h1, h2])"
  )

  Demo.doing("on B: the same with hordec: [h2, h1]")
  members = Enum.sort([{sup, h1}, {sup, h2}, {sup, here}, {sup, there}])

  alive_on = fn n ->
    for(%{status: :alive, name: m} <- :erpc.call(n, DSup, :members_info, [sup]), do: m)
    |> Enum.sort()
  end

  for {label, n} <- [{node_a, here}, {node_b, there}],
      do: Demo.await!("4 alive members on #{label}", fn -> alive_on.(n) end, &(&1 == members))

  Demo.seen(
    "4 members, alive on A and on B: the replicas on h1 and h2 (they run C workers), A and B (they run BEAM children)"
  )

  Demo.section("children spread over the C and the BEAM members")
  # Placement is the hash ring over the members able to run a child (replicas for C workers, BEAM
  # members for the others), computed from the child spec: pick specs that land on each member.
  pick = fn make, target, count ->
    picked =
      1..1000
      |> Stream.map(make)
      |> Stream.filter(&(DSup.placement(sup, elem(&1, 1)) == {:ok, {sup, target}}))
      |> Enum.take(count)

    Demo.expect!(length(picked) == count, "#{count} specs placed on #{nick[target]}", picked)
  end

  # {label, child spec}: every child carries its label in its argument, and answers with it.
  echo = fn restart ->
    fn i ->
      label = if restart == :temporary, do: "temp-echo-#{i}", else: "echo-#{i}"
      {label, {HordeC.CWorker, type: "echo", arg: label, restart: restart}}
    end
  end

  kv = fn i -> {"kv-#{i}", {HordeC.CWorker, type: "kv", arg: %{label: "kv-#{i}"}}} end

  gen = fn restart ->
    fn i ->
      label = if restart == :temporary, do: "temp-gen-#{i}", else: "gen-#{i}"
      {label, Supervisor.child_spec({Demo.SupWorker, label}, restart: restart)}
    end
  end

  plan =
    pick.(echo.(:permanent), h1, 3) ++
      pick.(echo.(:permanent), h2, 3) ++
      pick.(kv, h1, 1) ++
      pick.(kv, h2, 1) ++
      pick.(gen.(:permanent), here, 3) ++
      pick.(gen.(:permanent), there, 3) ++
      pick.(echo.(:temporary), h1, 1) ++ pick.(gen.(:temporary), there, 1)

  Demo.doing(
    "on A: start_child for #{length(plan)} children: echo and kv C workers ({HordeC.CWorker, type: ..., arg: ...}),"
  )

  Demo.doing("      Demo.SupWorker GenServers; two of them :temporary, the others :permanent")

  started =
    for {label, spec} <- plan do
      {:ok, pid} = DSup.start_child(sup, spec)
      Demo.show(label, "runs on #{Demo.Sup.where(nick, pid)}")
      {pid, label}
    end

  for {pid, label} <- started do
    {:ok, {_, want}} = DSup.placement(sup, elem(List.keyfind(plan, label, 0), 1))
    Demo.expect!(node(pid) == want, "#{label} on #{nick[want]}", node(pid))
  end

  Demo.await!(
    "#{length(plan)} children in which_children on B",
    fn -> length(:erpc.call(there, DSup, :which_children, [sup])) end,
    &(&1 == length(plan))
  )

  on_node = fn n -> Enum.count(started, &(node(elem(&1, 0)) == n)) end

  Demo.seen(
    "h1: #{on_node.(h1)}, h2: #{on_node.(h2)}, A: #{on_node.(here)}, B: #{on_node.(there)} children; " <>
      "which_children on A and on B lists all #{length(plan)}"
  )

  echo_pid = started |> Enum.find(&String.starts_with?(elem(&1, 1), "echo-")) |> elem(0)

  Demo.expect_eq!("an echo through a C child", {:hi, [1, 2]}, fn ->
    GenServer.call(echo_pid, {:echo, {:hi, [1, 2]}})
  end)

  Demo.seen("GenServer.call(#{inspect(echo_pid)}, {:echo, {:hi, [1, 2]}}) -> {:hi, [1, 2]}")

  Demo.section("kill -9 of a C node: names survive, C children come back elsewhere")
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
    "kill -9 #{os_pid}   (#{h1}: A's replica, through which \"survivor\" was registered, " <>
      "and where #{on_node.(h1)} C children run)"
  )

  # What must run once the supervisor has dealt with h1's death: every child, except the temporary
  # one that ran on h1 (temporary children are not restarted), and nothing on h1.
  after_h1 =
    for {pid, label} <- started,
        node(pid) != h1 or not String.starts_with?(label, "temp-"),
        do: label

  settled = fn want, dead ->
    fn known, restarting ->
      restarting == 0 and Enum.sort(Map.values(known)) == Enum.sort(want) and
        not Enum.any?(Map.keys(known), &(node(&1) in dead))
    end
  end

  {_, 0} = System.cmd("kill", ["-9", os_pid])
  t_kill = System.monotonic_time(:microsecond)

  # Meanwhile, which_children on A, polled and printed as it changes.
  sup_watch =
    Task.async(fn ->
      Demo.Sup.watch(sup, Map.new(started), t_kill, nick, settled.(after_h1, [h1]), 10_000)
    end)

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

  {known, us} = Task.await(sup_watch, 15_000)

  Demo.seen(
    "the supervisor: #{on_node.(h1) - 1} permanent C children of h1 run on h2, #{Demo.ms(us)} after the kill; " <>
      "its temporary one was not restarted; A is attached to #{elem(Attachment.replica(sup), 1)} now"
  )

  Demo.expect_eq!("A's supervisor replica", {sup, h2}, fn -> Attachment.replica(sup) end)

  Demo.section("kill -9 of Elixir node B: its children come back on A")
  b_os = :erpc.call(there, :os, :getpid, []) |> List.to_string()
  b_cmd = File.read!("/proc/#{b_os}/cmdline") |> String.replace(<<0>>, " ")
  Demo.expect!(b_cmd =~ peer_name, "pid #{b_os} to be #{there}", b_cmd)
  # B's :peer controller is linked to this process: B's death must not take the script with it.
  Process.unlink(peer)
  on_b = Enum.count(known, fn {pid, _} -> node(pid) == there end)

  after_b =
    for {pid, label} <- known,
        node(pid) != there or not String.starts_with?(label, "temp-"),
        do: label

  Demo.doing(
    "kill -9 #{b_os}   (#{there}: B, where #{on_b} BEAM children run, one of them temporary)"
  )

  {_, 0} = System.cmd("kill", ["-9", b_os])
  t_kill_b = System.monotonic_time(:microsecond)

  {_known, us} =
    Demo.Sup.watch(sup, known, t_kill_b, nick, settled.(after_b, [h1, there]), 10_000)

  Demo.seen(
    "B's #{on_b - 1} permanent children run on A, #{Demo.ms(us)} after the kill; its temporary one is gone"
  )

  Demo.section("afterwards: every permanent child runs exactly once")
  rows = Demo.Sup.rows(sup)
  Demo.expect!(Enum.all?(rows, &is_pid(elem(&1, 0))), "no child :restarting", rows)
  labels = for {pid, mods} <- rows, do: Demo.Sup.label(pid, mods)
  permanent = for {label, _} <- plan, not String.starts_with?(label, "temp-"), do: label

  Demo.expect!(
    Enum.sort(labels) == Enum.sort(permanent),
    "each of the #{length(permanent)} permanent children exactly once, answering from its process",
    Enum.sort(labels)
  )

  c_pids = for {pid, [HordeC.CWorker]} <- rows, do: pid
  beam_pids = for {pid, mods} <- rows, mods != [HordeC.CWorker], do: pid
  Demo.expect!(Enum.all?(c_pids, &(node(&1) == h2)), "every C child on h2", c_pids)

  # No stray copy on A: the live Demo.SupWorker processes here are exactly the listed ones.
  live_workers =
    for pid <- Process.list(),
        :proc_lib.translate_initial_call(pid) == {Demo.SupWorker, :init, 1},
        do: pid

  Demo.expect!(
    Enum.sort(live_workers) == Enum.sort(beam_pids),
    "the Demo.SupWorker processes on A to be exactly the listed BEAM children",
    {live_workers, beam_pids}
  )

  from_h2 = GenServer.call({sup, h2}, :count_children, 5_000)

  Demo.expect!(
    from_h2.active == length(permanent) and from_h2.specs == length(permanent),
    "h2's replica to count #{length(permanent)} active children",
    from_h2
  )

  Demo.seen(
    "which_children on A: #{length(rows)} children, each permanent one exactly once " <>
      "(#{length(c_pids)} C workers on h2, #{length(beam_pids)} GenServers on A), none :restarting"
  )

  Demo.seen("the live Demo.SupWorker processes on A are exactly those #{length(beam_pids)}")
  Demo.seen("h2's replica counts the same: #{inspect(from_h2)}")

  Demo.seen(
    "no temporary child was restarted: #{inspect(for {l, _} <- plan, String.starts_with?(l, "temp-"), do: l)} are gone"
  )
end

IO.puts(
  "\ndemo passed: every expectation held (#{Demo.ms(System.monotonic_time(:microsecond) - t_start)})\n"
)
