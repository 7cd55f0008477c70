# Supervisor benchmark: HordeC.DynamicSupervisor side by side with Elixir's DynamicSupervisor (local), in
# one run, on 3 hordec nodes and 3 BEAM nodes on loopback. Numbers only: nothing passes or fails.
#
#   elixir --name sbaTAG@127.0.0.1 --cookie C -pa HORDE_C_EBIN bench/supervisor_bench.exs H1 H2 H3
#
# (bench/run_supervisor_bench.sh does all of it: build, epmd, the hordec nodes, this script.) This node is
# BEAM node A; it starts B and C with OTP's :peer and loads this script's modules there. Every supervisor
# below is a fresh name (so no round sees another's children), run by HordeC.DynamicSupervisor on the BEAM
# nodes that take part (each one a member, `members: :auto`), attached A -> h1, B -> h2, C -> h3 (the
# failover's victim -> h3), each listing all three hordec nodes, so the three replicas are members too.
#
# What is measured, and how:
#   1. start_child/s, N = 1,000 and 10,000 children: W callers on each of A, B and C (3W in all), spawned
#      and waiting, then told to go; each calls start_child/2 on its own node for its share of the N child
#      specs. Rate = N / (go -> last caller done). BEAM children (a GenServer whose init returns at once,
#      placed on the 3 BEAM members by the hash ring) and C workers (hordec's built-in "echo", placed on the
#      3 replicas). Baseline: Elixir's DynamicSupervisor on A, the same N children started by 3W callers on
#      A. BENCH_ROUNDS rounds, the three alternating; median shown. CPU time of all six OS processes over
#      the round is reported per child.
#   2. kill -9 of a member, N = 1,000 and 10,000:
#      * a BEAM member: a fourth BEAM node V joins a fresh supervisor with A and B (3 BEAM members);
#        children are chosen (with HordeC.DynamicSupervisor.placement/2, as the replicas place them) so
#        that N run on each of A, B and V. V's OS process is killed with kill -9. Every child reports its
#        start (os_time) to a collector on its node; the figure is from A's {nodedown, V} (when the death
#        is seen) to the start of the last of V's N children on A or B. Also shown: from the kill, and
#        until A lists all 3N children running, none on V. Baseline: the time Elixir's
#        DynamicSupervisor on A takes to start N children from one caller (the floor for restarting N).
#      * a hordec member: a fourth hordec node hv (started by this script) runs N C workers of a
#        supervisor of A, B and C (each listing h1..h3 and hv, so hv's replica is a member). hv is killed
#        with kill -9; C workers report no start, so the figure is from A's nodedown of hv until A's
#        mirror shows none of them on hv (it includes the change stream to A).
#   3. memory per child in hordec, done first (so no freed memory is reused): a supervisor on A, B, C;
#      every hordec node's RSS (its :info) once the replicas are idle, before and after N_MEM BEAM
#      children, then after N_MEM C workers more. Per BEAM child: each hordec's growth / N_MEM (max of
#      3), less the bytes of the child spec (its external term format). C workers: the growth summed over
#      the 3 hordec nodes (every replica holds each record; one runs the worker) / N_MEM.
#
# Environment: BENCH_QUICK=1 (smaller figures, a smoke run), BENCH_ROUNDS (default 3, quick 1),
# BENCH_CALLERS (W, callers per BEAM node, default 8), BENCH_ERL_FLAGS (extra emulator flags for the
# peers; the shell script passes them to this node too), BENCH_TAG (makes the peers' node names unique).

{:module, _, child_bin, _} =
  defmodule SupBench.Child do
    @moduledoc false
    # The benchmark's BEAM child: init returns at once; with `report`, it first tells its node's
    # collector (registered :sb_col) when it started.
    use GenServer
    def start_link(arg), do: GenServer.start_link(__MODULE__, arg)

    @impl true
    def init({_key, true} = arg) do
      send(:sb_col, {:up, System.os_time(:microsecond)})
      {:ok, arg}
    end

    def init(arg), do: {:ok, arg}
  end

{:module, _, node_bin, _} =
  defmodule SupBench.Node do
    @moduledoc false
    # Runs on every BEAM node of the benchmark (its binary is loaded on the peers).

    # Runs `fun` in a process that outlives the :erpc call that asks for it; returns fun's result.
    defp keep(fun) do
      caller = self()
      ref = make_ref()

      spawn(fn ->
        Process.flag(:trap_exit, true)
        send(caller, {ref, fun.()})

        receive do
          :never -> :ok
        end
      end)

      receive do
        {^ref, r} -> r
      after
        60_000 -> {:error, :setup_timeout}
      end
    end

    def setup do
      keep(fn ->
        pid = spawn(fn -> collector(0, 0) end)
        Process.register(pid, :sb_col)
        :ok
      end)
    end

    # The collector of child starts: how many since the last reset, and the latest os_time.
    defp collector(n, t) do
      receive do
        {:up, tu} -> collector(n + 1, max(t, tu))
        {:get, from, ref} -> send(from, {ref, n, t}) && collector(n, t)
        :reset -> collector(0, 0)
      end
    end

    def collected do
      ref = make_ref()
      send(:sb_col, {:get, self(), ref})
      receive(do: ({^ref, n, t} -> {n, t}))
    end

    def reset, do: send(:sb_col, :reset)

    def start_sup(name, hordecs) do
      keep(fn ->
        HordeC.DynamicSupervisor.start_link(name: name, strategy: :one_for_one, hordec: hordecs)
      end)
    end

    def start_dsup(name) do
      keep(fn -> DynamicSupervisor.start_link(name: name, strategy: :one_for_one) end)
    end

    # Kills the member (its children, linked to it, die with it).
    def kill(name) do
      case Process.whereis(name) do
        nil -> :ok
        pid -> Process.exit(pid, :kill)
      end

      :ok
    end

    def alive_beam(name) do
      for %{kind: :beam, status: :alive, name: {_, n}} <-
            HordeC.DynamicSupervisor.members_info(name),
          do: n
    end

    def alive_c(name) do
      for %{kind: :c, status: :alive, name: {_, n}} <-
            HordeC.DynamicSupervisor.members_info(name),
          do: n
    end

    def count(name), do: length(HordeC.DynamicSupervisor.which_children(name))

    def spec(:beam, key, report),
      do: %{id: SupBench.Child, start: {SupBench.Child, :start_link, [{key, report}]}}

    def spec(:c, key, _report), do: {HordeC.CWorker, type: "echo", arg: key}

    @doc """
    Spawns `w` callers that wait for `:go`, then start the children of `keys` (caller j takes every
    w-th key from the j-th) through `kind`'s start_child on supervisor `name`, and send
    `{:done, pid, errors}` to `to`. `kind`: :hordec (HordeC.DynamicSupervisor) or :elixir
    (DynamicSupervisor); `child`: :beam or :c.
    """
    def callers(kind, name, child, keys, w, report, to) do
      shares = Enum.with_index(keys) |> Enum.group_by(fn {_, i} -> rem(i, w) end, &elem(&1, 0))

      for {_, share} <- shares do
        spawn(fn ->
          receive do
            :go -> :ok
          end

          errors =
            Enum.reduce(share, 0, fn key, errs ->
              case start(kind, name, spec(child, key, report)) do
                {:ok, _} -> errs
                _ -> errs + 1
              end
            end)

          send(to, {:done, self(), errors})
        end)
      end
    end

    defp start(:hordec, name, spec), do: HordeC.DynamicSupervisor.start_child(name, spec)
    defp start(:elixir, name, spec), do: DynamicSupervisor.start_child(name, spec)
  end

:persistent_term.put(:supbench_binaries, [{SupBench.Child, child_bin}, {SupBench.Node, node_bin}])

defmodule SupBench do
  @moduledoc false
  alias SupBench.Node, as: N

  def quick?, do: System.get_env("BENCH_QUICK") in ["1", "true"]

  def env_int(var, default) do
    case Integer.parse(System.get_env(var, "")) do
      {i, ""} when i > 0 -> i
      _ -> default
    end
  end

  def rounds, do: env_int("BENCH_ROUNDS", if(quick?(), do: 1, else: 3))
  def callers, do: env_int("BENCH_CALLERS", 8)
  def sizes, do: if(quick?(), do: [1_000, 2_000], else: [1_000, 10_000])
  def n_mem, do: if(quick?(), do: 2_000, else: 10_000)

  def now, do: System.monotonic_time()
  def ms(native), do: System.convert_time_unit(native, :native, :microsecond) / 1000

  def median(list), do: Enum.at(Enum.sort(list), div(length(list), 2))

  def wait_until(fun, timeout_ms \\ 60_000, what \\ "condition") do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    do_wait(fun, deadline, what)
  end

  defp do_wait(fun, deadline, what) do
    cond do
      fun.() -> :ok
      System.monotonic_time(:millisecond) > deadline -> raise "timed out waiting for #{what}"
      true -> Process.sleep(5) && do_wait(fun, deadline, what)
    end
  end

  # ------------------------------------------------------------------ cluster

  def start_peer(cookie, letter, link?) do
    name = ~c"sb#{letter}#{System.get_env("BENCH_TAG", "")}"
    otp = List.to_string(:code.lib_dir())

    paths =
      for p <- :code.get_path(),
          not String.starts_with?(List.to_string(p), otp),
          p != ~c".",
          do: p

    extra =
      System.get_env("BENCH_ERL_FLAGS", "") |> String.split() |> Enum.map(&String.to_charlist/1)

    args = [~c"-setcookie", Atom.to_charlist(cookie), ~c"-pa" | paths] ++ extra
    opts = %{name: name, host: ~c"127.0.0.1", longnames: true, args: args}
    {:ok, peer, node} = if link?, do: :peer.start_link(opts), else: :peer.start(opts)

    for {mod, bin} <- :persistent_term.get(:supbench_binaries) do
      {:module, ^mod} =
        :erpc.call(node, :code, :load_binary, [mod, ~c"supervisor_bench.exs", bin])
    end

    {:ok, _} = :erpc.call(node, :application, :ensure_all_started, [:horde_c])
    :ok = :erpc.call(node, N, :setup, [])
    {peer, node}
  end

  def os_pid(node), do: :erpc.call(node, :os, :getpid, []) |> List.to_integer()

  # ------------------------------------------------------------------ CPU accounting (Linux /proc)

  def clk_tck do
    case System.cmd("getconf", ["CLK_TCK"], stderr_to_stdout: true) do
      {out, 0} -> String.to_integer(String.trim(out))
      _ -> 100
    end
  rescue
    _ -> 100
  end

  def cpu(procs) do
    tck = :persistent_term.get(:supbench_clk_tck)

    Map.new(procs, fn {label, pid} ->
      secs =
        case File.read("/proc/#{pid}/stat") do
          {:ok, stat} ->
            [_, rest] = String.split(stat, ") ", parts: 2)
            f = String.split(rest)
            (String.to_integer(Enum.at(f, 11)) + String.to_integer(Enum.at(f, 12))) / tck

          _ ->
            0.0
        end

      {label, secs}
    end)
  end

  def cpu_diff(c1, c0), do: Map.new(c1, fn {k, v} -> {k, v - Map.fetch!(c0, k)} end)
  def cpu_add(a, b), do: Map.merge(a, b, fn _k, x, y -> x + y end)

  # ------------------------------------------------------------------ supervisors

  def fresh_name(what), do: :"sb_#{what}_#{System.unique_integer([:positive])}"

  def sup_stats(h, name), do: GenServer.call({name, h}, :stats, 30_000)
  def rss(h), do: GenServer.call({:hordec, h}, :info).rss_bytes

  @doc "Starts supervisor `name` on `members` ([{node, hordecs}]) and waits until all see them alive."
  def start_sup(name, members, hordecs) do
    for {node, hs} <- members, do: {:ok, _} = :erpc.call(node, N, :start_sup, [name, hs])
    beam = Enum.sort(for {n, _} <- members, do: n)

    wait_until(
      fn ->
        Enum.all?(members, fn {n, _} ->
          Enum.sort(:erpc.call(n, N, :alive_beam, [name])) == beam and
            length(:erpc.call(n, N, :alive_c, [name])) == length(hordecs)
        end)
      end,
      30_000,
      "members of #{name}"
    )
  end

  @doc "Kills the members (and their children), then stops the replicas."
  def stop_sup(name, nodes, hordecs) do
    for n <- nodes, do: :erpc.call(n, N, :kill, [name])
    Process.sleep(50)
    for h <- hordecs, do: GenServer.call({:hordec, h}, {:supervisor_stop, name})
    :ok
  end

  def wait_idle(name, hordecs) do
    wait_until(fn -> Enum.all?(hordecs, &sup_stats(&1, name).idle) end, 60_000, "idle replicas")
  end

  # ------------------------------------------------------------------ 1: start_child/s

  # One timed start of `n` children: returns %{rate, cpu, errors}.
  def start_round(kind, name, child, n, callers_on, procs, report \\ false) do
    me = self()
    keys = Enum.to_list(1..n)
    parts = Enum.with_index(callers_on)
    share = fn i -> Enum.filter(keys, &(rem(&1, length(callers_on)) == i)) end

    pids =
      Enum.flat_map(parts, fn {{node, w}, i} ->
        :erpc.call(node, N, :callers, [kind, name, child, share.(i), w, report, me])
      end)

    c0 = cpu(procs)
    t0 = now()
    Enum.each(pids, &send(&1, :go))
    errors = Enum.sum(for _ <- pids, do: receive(do: ({:done, _, e} -> e)))
    t = now() - t0
    c1 = cpu(procs)
    %{rate: n / (ms(t) / 1000), cpu: cpu_diff(c1, c0), errors: errors, n: n}
  end

  def start_rates(nodes, hordecs, procs) do
    w = callers()
    [a | _] = nodes
    members = Enum.zip(nodes, [rotate(hordecs, 0), rotate(hordecs, 1), rotate(hordecs, 2)])

    for n <- sizes(), r <- 1..rounds(), reduce: %{} do
      acc ->
        beam = hordec_round(:beam, n, members, hordecs, procs, w)
        c = hordec_round(:c, n, members, hordecs, procs, w)
        dname = fresh_name("ds")
        {:ok, dsup} = N.start_dsup(dname)
        e = start_round(:elixir, dname, :beam, n, [{a, 3 * w}], procs)
        :ok = GenServer.stop(dsup, :normal, 60_000)
        IO.puts("  measured: start_child/s, #{n} children, round #{r}")

        acc
        |> Map.update({:beam, n}, [beam], &[beam | &1])
        |> Map.update({:c, n}, [c], &[c | &1])
        |> Map.update({:elixir, n}, [e], &[e | &1])
    end
  end

  defp rotate(list, k), do: Enum.drop(list, k) ++ Enum.take(list, k)

  defp hordec_round(child, n, members, hordecs, procs, w) do
    name = fresh_name("rate")
    start_sup(name, members, hordecs)
    nodes = for {node, _} <- members, do: node
    res = start_round(:hordec, name, child, n, for(nd <- nodes, do: {nd, w}), procs)

    wait_until(
      fn -> Enum.all?(nodes, &(:erpc.call(&1, N, :count, [name]) == n)) end,
      60_000,
      "count"
    )

    stop_sup(name, nodes, hordecs)
    res
  end

  # ------------------------------------------------------------------ 2: failover

  # Keys 1, 2, ... of child kind `kind` whose placement (as `name`'s members are now) is a node in
  # `want` (node => how many), until each has its count. Placement is computed here, as the replicas do.
  defp keys_for(name, kind, want) do
    Enum.reduce_while(Stream.iterate(1, &(&1 + 1)), {[], want}, fn i, {keys, left} ->
      {:ok, {_, node}} = HordeC.DynamicSupervisor.placement(name, N.spec(kind, i, true))

      {keys, left} =
        case left do
          %{^node => l} when l > 0 -> {[i | keys], Map.put(left, node, l - 1)}
          _ -> {keys, left}
        end

      if Enum.all?(left, fn {_, l} -> l == 0 end),
        do: {:halt, Enum.reverse(keys)},
        else: {:cont, {keys, left}}
    end)
  end

  # Starts the children of `keys` from callers on `nodes`; all must start.
  defp start_all(name, kind, keys, nodes) do
    me = self()

    pids =
      Enum.flat_map(Enum.with_index(nodes), fn {node, i} ->
        share = for {k, j} <- Enum.with_index(keys), rem(j, length(nodes)) == i, do: k
        :erpc.call(node, N, :callers, [:hordec, name, kind, share, callers(), true, me])
      end)

    Enum.each(pids, &send(&1, :go))
    0 = Enum.sum(for _ <- pids, do: receive(do: ({:done, _, e} -> e)))
    :ok
  end

  defp on_node(name, node) do
    HordeC.DynamicSupervisor.which_children(name)
    |> Enum.count(fn {_, pid, _, _} -> is_pid(pid) and node(pid) == node end)
  end

  # Kills OS process `os_pid` with kill -9; returns {os_time of the kill, of A's nodedown}.
  defp kill_and_see(node, os_pid) do
    :ok = :net_kernel.monitor_nodes(true, node_type: :all)
    t_kill = System.os_time(:microsecond)
    {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])

    t_down =
      receive do
        {:nodedown, ^node, _} -> System.os_time(:microsecond)
      after
        30_000 -> raise "no nodedown for #{node}"
      end

    :net_kernel.monitor_nodes(false, node_type: :all)
    {t_kill, t_down}
  end

  @doc """
  A BEAM member V (a fourth BEAM node) running n children, with A and B running n each, killed with
  kill -9: when its last child started again on A or B.
  """
  def failover_beam(nodes, hordecs, cookie, n, procs) do
    [a, b | _] = nodes
    {vpeer, v} = start_peer(cookie, "v#{n}", false)
    v_os = os_pid(v)
    name = fresh_name("fo")
    [h1, h2, h3] = hordecs
    start_sup(name, [{a, [h1, h2, h3]}, {b, [h2, h3, h1]}, {v, [h3, h1, h2]}], hordecs)
    :ok = start_all(name, :beam, keys_for(name, :beam, %{a => n, b => n, v => n}), [a, b])
    wait_until(fn -> :erpc.call(a, N, :count, [name]) == 3 * n end, 60_000, "3n children")
    placed = on_node(name, v)
    wait_idle(name, hordecs)

    for nd <- [a, b], do: :erpc.call(nd, N, :reset, [])
    c0 = cpu(procs)
    {t_kill, t_down} = kill_and_see(v, v_os)
    {count, t_last} = poll_collected([a, b], placed, System.monotonic_time(:millisecond) + 60_000)
    c1 = cpu(procs)

    # the listing converges too: 3n children, none on V
    wait_until(
      fn -> :erpc.call(a, N, :count, [name]) == 3 * n and on_node(name, v) == 0 end,
      60_000,
      "children of V listed elsewhere"
    )

    t_listed = System.os_time(:microsecond)
    stop_sup(name, [a, b], hordecs)

    try do
      :peer.stop(vpeer)
    catch
      _, _ -> :ok
    end

    %{
      n: placed,
      restarted: count,
      from_down_ms: (t_last - t_down) / 1000,
      from_kill_ms: (t_last - t_kill) / 1000,
      down_after_kill_ms: (t_down - t_kill) / 1000,
      listed_ms: (t_listed - t_down) / 1000,
      cpu: cpu_diff(c1, c0)
    }
  end

  # Polls the collectors of `nodes` (1 ms apart) until they counted `want` starts, or the deadline.
  defp poll_collected(nodes, want, deadline) do
    {c, t} =
      Enum.reduce(nodes, {0, 0}, fn nd, {c, t} ->
        {ci, ti} = :erpc.call(nd, N, :collected, [])
        {c + ci, max(t, ti)}
      end)

    if c >= want or System.monotonic_time(:millisecond) > deadline do
      {c, t}
    else
      Process.sleep(1)
      poll_collected(nodes, want, deadline)
    end
  end

  @doc """
  A fourth hordec node hv, a member (replica) running n C workers, killed with kill -9: when A's mirror
  shows every one of them running on another replica (C workers report no start; A's view of the
  records is the figure, so it includes the change stream to A).
  """
  def failover_hordec(nodes, hordecs, n, procs) do
    [a, b, c] = nodes
    {hv, hv_os, port} = start_hordec("sbhv#{n}")
    [h1, h2, h3] = hordecs
    name = fresh_name("foc")
    all = hordecs ++ [hv]
    members = [{a, [h1, h2, h3, hv]}, {b, [h2, h3, h1, hv]}, {c, [h3, h1, h2, hv]}]
    start_sup(name, members, all)
    keys = keys_for(name, :c, %{hv => n})
    :ok = start_all(name, :c, keys, nodes)
    wait_until(fn -> :erpc.call(a, N, :count, [name]) == length(keys) end, 60_000, "C workers")
    placed = on_node(name, hv)
    wait_idle(name, all)

    table = HordeC.DynamicSupervisor.Mirror.children_table(name)
    # records naming hv, or relinquished
    ms = [
      {{:_, :_, :_, :_, :_, :"$1", :_},
       [{:orelse, {:==, :"$1", nil}, {:==, :"$1", {{name, hv}}}}], [true]}
    ]

    c0 = cpu(procs)
    {t_kill, t_down} = kill_and_see(hv, hv_os)
    poll_table(table, ms, System.monotonic_time(:millisecond) + 60_000)
    t_moved = System.os_time(:microsecond)
    c1 = cpu(procs)
    left = :ets.select_count(table, ms)
    total = :ets.info(table, :size)
    stop_sup(name, nodes, hordecs)
    # the port closes by itself when hv's exit status arrives
    receive do
      {^port, {:exit_status, _}} -> :ok
    after
      5_000 -> :ok
    end

    %{
      n: placed,
      total: total,
      left: left,
      from_down_ms: (t_moved - t_down) / 1000,
      from_kill_ms: (t_moved - t_kill) / 1000,
      down_after_kill_ms: (t_down - t_kill) / 1000,
      cpu: cpu_diff(c1, c0)
    }
  end

  defp poll_table(table, ms, deadline) do
    if :ets.select_count(table, ms) == 0 or System.monotonic_time(:millisecond) > deadline do
      :ok
    else
      Process.sleep(1)
      poll_table(table, ms, deadline)
    end
  end

  # A hordec node started from here (the failover's victim): {node, os_pid, port}.
  defp start_hordec(name) do
    bin = System.fetch_env!("HORDEC_BIN")
    node = "#{name}#{System.get_env("BENCH_TAG", "")}@127.0.0.1"
    args = ["--name", node, "--cookie", Atom.to_string(Node.get_cookie()), "--log-level", "error"]
    port = Port.open({:spawn_executable, bin}, [:binary, :exit_status, {:line, 1024}, args: args])
    {:os_pid, os_pid} = Port.info(port, :os_pid)

    receive do
      {^port, {:data, {:eol, "hordec ready " <> _}}} -> :ok
    after
      10_000 -> raise "hordec #{node} not ready"
    end

    node = String.to_atom(node)
    :pong = GenServer.call({:hordec, node}, :ping)
    {node, os_pid, port}
  end

  # Elixir's DynamicSupervisor on this node: n children from one caller (the floor for restarting n).
  def local_floor(n) do
    name = fresh_name("floor")
    {:ok, dsup} = N.start_dsup(name)
    t0 = now()
    for i <- 1..n, do: {:ok, _} = DynamicSupervisor.start_child(name, N.spec(:beam, i, false))
    t = ms(now() - t0)
    GenServer.stop(dsup, :normal, 60_000)
    t
  end

  # ------------------------------------------------------------------ 3: memory

  def memory(nodes, hordecs) do
    n = n_mem()
    name = fresh_name("mem")
    members = Enum.zip(nodes, [rotate(hordecs, 0), rotate(hordecs, 1), rotate(hordecs, 2)])
    start_sup(name, members, hordecs)
    wait_idle(name, hordecs)
    Process.sleep(200)
    rss0 = Map.new(hordecs, &{&1, rss(&1)})
    beam = start_round(:hordec, name, :beam, n, for(nd <- nodes, do: {nd, callers()}), %{})
    wait_idle(name, hordecs)
    Process.sleep(200)
    rss1 = Map.new(hordecs, &{&1, rss(&1)})
    # one record as the replicas store it: {child, Id} => {Kind, Restart, Hash, Body, Member, Pid}
    [{id, kind, restart, hash, body, member, pid} | _] =
      :ets.tab2list(HordeC.DynamicSupervisor.Mirror.children_table(name))

    record_bytes =
      byte_size(:erlang.term_to_binary({:child, id})) +
        byte_size(:erlang.term_to_binary({kind, restart, hash, body, member, pid}))

    # C workers: keys above the BEAM children's (their args differ anyway)
    me = self()

    pids =
      Enum.flat_map(Enum.with_index(nodes), fn {node, i} ->
        share = for k <- (n + 1)..(2 * n), rem(k, 3) == i, do: k
        :erpc.call(node, N, :callers, [:hordec, name, :c, share, callers(), false, me])
      end)

    Enum.each(pids, &send(&1, :go))
    0 = Enum.sum(for _ <- pids, do: receive(do: ({:done, _, e} -> e)))
    wait_idle(name, hordecs)
    Process.sleep(200)
    rss2 = Map.new(hordecs, &{&1, rss(&1)})
    stats = Map.new(hordecs, &{&1, sup_stats(&1, name)})
    stop_sup(name, nodes, hordecs)

    beam_spec = N.spec(:beam, n, false) |> Supervisor.child_spec([])
    beam_bytes = byte_size(:erlang.term_to_binary(beam_spec))
    c_bytes = byte_size(:erlang.term_to_binary({"echo", 2 * n}))

    %{
      n: n,
      beam_errors: beam.errors,
      beam_per: for(h <- hordecs, do: (rss1[h] - rss0[h]) / n),
      c_sum: Enum.sum(for h <- hordecs, do: rss2[h] - rss1[h]) / n,
      beam_spec_bytes: beam_bytes,
      record_bytes: record_bytes,
      c_spec_bytes: c_bytes,
      stats: stats
    }
  end

  # ------------------------------------------------------------------ output

  def f(x, d \\ 1), do: :erlang.float_to_binary(x / 1, decimals: d)

  def int(x) do
    round(x)
    |> Integer.to_string()
    |> String.reverse()
    |> String.replace(~r/(\d{3})(?=\d)/, "\\1,")
    |> String.reverse()
  end

  @widths [50, 12, 38, 6, 12, 3]
  def row(cols) do
    line =
      Enum.zip(cols, @widths) |> Enum.map_join(" | ", fn {c, w} -> String.pad_trailing(c, w) end)

    IO.puts("| " <> line <> " |")
  end

  def sep, do: row(Enum.map(@widths, &String.duplicate("-", &1)))
  def met(true), do: "yes"
  def met(false), do: "NO"

  def cpu_line(cpu, n) do
    total = cpu |> Map.values() |> Enum.sum()
    parts = for {k, v} <- Enum.sort(cpu), v > 0.0005, do: "#{k} #{f(v * 1.0e6 / n, 0)}"
    "#{f(total * 1.0e6 / n, 0)} µs (#{Enum.join(parts, ", ")})"
  end
end

# ==================================================================== main

defmodule SupBench.Main do
  @moduledoc false
  import SupBench, only: [f: 1, f: 2, int: 1, row: 1, sep: 0, met: 1, median: 1]

  def run(argv) do
    hordecs = Enum.map(argv, &String.to_atom/1)
    length(hordecs) == 3 || raise "usage: supervisor_bench.exs H1 H2 H3"
    Node.alive?() || raise "run this script with --name so it is distributed"
    {:ok, _} = Application.ensure_all_started(:horde_c)
    for h <- hordecs, do: :pong = GenServer.call({:hordec, h}, :ping)
    :persistent_term.put(:supbench_clk_tck, SupBench.clk_tck())
    :ok = SupBench.Node.setup()

    t_start = System.monotonic_time()
    cookie = Node.get_cookie()
    {_pb, b} = SupBench.start_peer(cookie, "b", true)
    {_pc, c} = SupBench.start_peer(cookie, "c", true)
    nodes = [node(), b, c]

    procs =
      Enum.zip(["A", "B", "C"], Enum.map(nodes, &SupBench.os_pid/1)) ++
        Enum.zip(
          ["h1", "h2", "h3"],
          for(h <- hordecs, do: GenServer.call({:hordec, h}, :info).os_pid)
        )

    IO.puts("""

    HordeC supervisor benchmark: 3 BEAM nodes, 3 hordec nodes, loopback, #{System.schedulers_online()} cores
      OTP #{System.otp_release()}, Elixir #{System.version()}, hordec #{GenServer.call({:hordec, hd(hordecs)}, :info).version}
      A #{node()}, B #{b}, C #{c}; h1..h3 #{Enum.join(hordecs, ", ")}; members attached A -> h1, B -> h2, C -> h3
      #{SupBench.callers()} callers per BEAM node; extra emulator flags: #{inspect(System.get_env("BENCH_ERL_FLAGS", ""))}
    """)

    mem = SupBench.memory(nodes, hordecs)
    IO.puts("  measured: memory (#{mem.n} BEAM children, then #{mem.n} C workers)")
    rates = SupBench.start_rates(nodes, hordecs, procs)

    fo =
      for n <- SupBench.sizes() do
        r = SupBench.failover_beam(nodes, hordecs, cookie, n, procs)
        IO.puts("  measured: kill -9 of a BEAM member running #{r.n} children")
        rc = SupBench.failover_hordec(nodes, hordecs, n, procs)
        IO.puts("  measured: kill -9 of a hordec member running #{rc.n} C workers")
        {n, r, rc, SupBench.local_floor(n)}
      end

    IO.puts("")
    report(rates, fo, mem)
    IO.puts("  run time #{f(SupBench.ms(System.monotonic_time() - t_start) / 1000)} s")
  end

  defp report(rates, fo, mem) do
    sep()
    row(["figure", "HordeC", "baseline (same run)", "ratio", "target", "met"])
    sep()

    for n <- SupBench.sizes() do
      e = median(Enum.map(rates[{:elixir, n}], & &1.rate))

      for {kind, label} <- [{:beam, "BEAM children"}, {:c, "C workers"}] do
        h = median(Enum.map(rates[{kind, n}], & &1.rate))

        row([
          "start_child/s, #{int(n)} #{label}",
          "#{int(h)}/s",
          "DynamicSupervisor #{int(e)}/s",
          "#{f(h / e, 2)}×",
          "≥ 35,000/s",
          met(h >= 35_000)
        ])
      end
    end

    for {n, r, rc, floor} <- fo do
      target = if n <= 1_000, do: 100, else: 200

      row([
        "kill -9 of a BEAM member: its #{int(r.n)} children",
        "#{f(r.from_down_ms)} ms",
        "DynamicSupervisor starts #{int(n)}: #{f(floor)} ms",
        "#{f(r.from_down_ms / floor, 2)}×",
        "< #{target} ms",
        met(r.from_down_ms < target)
      ])

      row([
        "kill -9 of a hordec member: its #{int(rc.n)} C workers",
        "#{f(rc.from_down_ms)} ms",
        "",
        "",
        "< #{target} ms",
        met(rc.from_down_ms < target)
      ])
    end

    beam_max = Enum.max(mem.beam_per)
    beam_over = beam_max - mem.beam_spec_bytes
    c_over = mem.c_sum - 3 * mem.c_spec_bytes

    row([
      "hordec memory/child beyond its spec (max of 3)",
      "#{f(beam_over, 0)} B",
      "spec #{mem.beam_spec_bytes} B, RSS #{f(beam_max, 0)} B",
      "—",
      "≤ 300 B",
      met(beam_over <= 300)
    ])

    row([
      "  C worker: 3 records + the worker, summed",
      "#{f(c_over, 0)} B",
      "spec #{mem.c_spec_bytes} B, RSS #{f(mem.c_sum, 0)} B",
      "—",
      "",
      ""
    ])

    sep()
    keys = Enum.sort(Map.keys(rates))

    per_round =
      Enum.map_join(keys, "\n", fn {k, n} ->
        rs = Enum.reverse(rates[{k, n}])
        "    #{k} #{int(n)}: " <> Enum.map_join(rs, ", ", &rate_text/1)
      end)

    cpu =
      Enum.map_join(keys, "\n", fn {k, n} ->
        rs = Enum.sort_by(rates[{k, n}], & &1.rate)
        "    #{k} #{int(n)}: " <> SupBench.cpu_line(Enum.at(rs, div(length(rs), 2)).cpu, n)
      end)

    failovers =
      Enum.map_join(fo, "\n", fn {_n, r, rc, _} ->
        "    BEAM member, #{r.n} children: #{r.restarted} started again; the last #{f(r.from_down_ms)} ms " <>
          "after A's nodedown, #{f(r.from_kill_ms)} ms after the kill (nodedown " <>
          "#{f(r.down_after_kill_ms)} ms after it); all listed on A #{f(r.listed_ms)} ms after the " <>
          "nodedown; CPU per child #{SupBench.cpu_line(r.cpu, max(r.n, 1))}\n" <>
          "    hordec member, #{rc.n} C workers: all shown running elsewhere on A #{f(rc.from_down_ms)} ms " <>
          "after A's nodedown (#{f(rc.from_kill_ms)} ms after the kill, nodedown " <>
          "#{f(rc.down_after_kill_ms)} ms after it; #{rc.left} left, #{rc.total} records); CPU per child " <>
          SupBench.cpu_line(rc.cpu, max(rc.n, 1))
      end)

    stats =
      Enum.map_join(mem.stats, "; ", fn {_h, s} ->
        "children #{s.children}, running_here #{s.running_here}"
      end)

    IO.puts("""

    Details and context (same run):
      start_child/s per round:
    #{per_round}
      CPU per child started, all six OS processes (median round):
    #{cpu}
      failover (kill -9; children started again on the survivors):
    #{failovers}
      memory: RSS growth per BEAM child, h1..h3: #{Enum.map_join(mem.beam_per, ", ", &"#{f(&1, 0)} B")} (#{mem.n} children); its record (key and value, external term format): #{mem.record_bytes} B
        per C worker, summed over h1..h3: #{f(mem.c_sum, 0)} B; replica stats: #{stats}
    """)
  end

  defp rate_text(r),
    do: "#{int(r.rate)}/s" <> if(r.errors > 0, do: " (#{r.errors} errors)", else: "")
end

SupBench.Main.run(System.argv())
