# Registry benchmark: HordeC.Registry side by side with Elixir's Registry (local), :global and :pg,
# in one run, on 3 hordec nodes and 3 BEAM nodes on loopback. Numbers only: nothing passes or fails.
#
#   elixir --name rbaTAG@127.0.0.1 --cookie C -pa HORDE_C_EBIN bench/registry_bench.exs H1 H2 H3
#
# (bench/run_registry_bench.sh does all of it: build, epmd, the hordec nodes, this script.) This
# node is BEAM node A; it starts B and C itself with OTP's :peer (so they die with it), loads the
# same code there, and starts on every BEAM node a HordeC.Registry (`:bench_reg`, keys: :unique,
# attached to a different hordec node each: A -> H1, B -> H2, C -> H3, each listing all three) and
# a :pg scope (`:bench_pg`); A also runs an Elixir Registry (`:bench_ereg`). Every figure is a
# ratio against its baseline measured in this same run; latencies and rates are interleaved.
#
# What is measured, and how each system is measured the same way:
#   1. lookup p50: `HordeC.Registry.lookup/2` of a name held by a process on A and of one held by a
#      process on B, against `Registry.lookup/2` of a name held on A (it has nothing else). One
#      lookup is ~0.3 µs, too close to the clock's cost to time alone, so the figure is the median
#      over batches of 100 lookups (cycling over 1,000 registered keys) of the per-lookup mean.
#   2. register/s, 1,000 concurrent processes on A: 1,000 processes spawned and waiting, then told
#      to go; each registers one name (`:pg.join/3`: joins one group). Rate = 1,000 / (go -> last
#      reply). Median of BENCH_ROUNDS rounds, systems alternating; names removed between rounds.
#   3. register/s, one process registering 10,000 names in sequence, timed per 1,000-name slice.
#   4. N registrations (10k, 100k) made on A by 100 concurrent processes, until visible to lookup on
#      every BEAM node: a poller on each node walks the keys in order, waiting (1 ms sleeps) on the
#      first one not visible yet, and reports when it has seen all N. Timed from the go to the last
#      poller's report (also shown: from the last write's return). :pg the same with `:pg.join/3`
#      and `:pg.get_members/2`. The CPU time all six OS processes used meanwhile is reported too.
#   5. GenServer.call from A to a process on B by name, p50 over single calls: one echo server
#      registered both as `{:via, HordeC.Registry, {:bench_reg, :echo}}` and `{:global, :echo}`.
#   6. memory per entry, over the 100k registrations of 4 (done first, so no freed memory is
#      reused): each hordec node's RSS growth (its `:info`) once every replica is idle; the client's
#      ETS (:ets.info(t, :memory) over its three tables) on A (this node's processes) and on B
#      (another node's); Elixir's Registry: its tables' growth for the same 100k names on A.
#
# Environment: BENCH_ROUNDS (rounds for rows 2 and 4-10k, default 5), BENCH_QUICK=1 (smaller
# figures, a smoke run), BENCH_ERL_FLAGS (extra emulator flags for the peers; the shell script
# passes them to this node too), BENCH_TAG (makes the peers' node names unique).

{:module, _, echo_bin, _} =
  defmodule RegBench.Echo do
    @moduledoc false
    use GenServer
    def init(arg), do: {:ok, arg}
    def handle_call(msg, _from, state), do: {:reply, msg, state}
  end

{:module, _, node_bin, _} =
  defmodule RegBench.Node do
    @moduledoc false
    # Runs on every BEAM node of the benchmark (its binary is loaded on the peers).
    @reg :bench_reg
    @ereg :bench_ereg
    @pg :bench_pg

    # Starts this node's registries in a process that outlives the :erpc call that asks for it.
    def setup(hordecs, elixir_registry?) do
      caller = self()
      ref = make_ref()

      spawn(fn ->
        {:ok, _} = HordeC.Registry.start_link(name: @reg, keys: :unique, hordec: hordecs)
        {:ok, _} = :pg.start_link(@pg)
        if elixir_registry?, do: {:ok, _} = Registry.start_link(keys: :unique, name: @ereg)
        send(caller, {ref, :ok})
        Process.sleep(:infinity)
      end)

      receive do
        {^ref, r} -> r
      after
        60_000 -> {:error, :setup_timeout}
      end
    end

    def register(:hordec, key), do: {:ok, _} = HordeC.Registry.register(@reg, key, nil)
    def register(:pg, key), do: :ok = :pg.join(@pg, key, self())
    def register(:registry, key), do: {:ok, _} = Registry.register(@ereg, key, nil)
    def register(:global, key), do: :yes = :global.register_name(key, self())

    def visible?(:hordec, key), do: HordeC.Registry.lookup(@reg, key) != []
    def visible?(:pg, key), do: :pg.get_members(@pg, key) != []

    # What is left registered on this node's view (names of the benchmark only).
    def count(:hordec), do: HordeC.Registry.count(@reg)
    def count(:pg), do: length(:pg.which_groups(@pg))

    @doc """
    Spawns `w` processes that wait for `:go`, then register `{prefix, i}` for their share of 1..n
    (process j takes i = j, j + w, j + 2w...), send `{:written, pid}` to `to`, and live until
    `:release` (their exit removes their names).
    """
    def writers(kind, prefix, n, w, to) do
      for j <- 1..w do
        spawn(fn ->
          receive do
            :go -> :ok
          end

          reg_stride(kind, prefix, j, n, w)
          send(to, {:written, self()})

          receive do
            :release -> :ok
          end
        end)
      end
    end

    defp reg_stride(_kind, _prefix, i, n, _w) when i > n, do: :ok

    defp reg_stride(kind, prefix, i, n, w) do
      register(kind, {prefix, i})
      reg_stride(kind, prefix, i + w, n, w)
    end

    @doc "A poller: sends `{tag, node()}` to `to` once `{prefix, 1..n}` are all visible here."
    def poller(kind, prefix, n, to, tag) do
      spawn(fn ->
        walk(kind, prefix, 1, n)
        send(to, {tag, node()})
      end)
    end

    defp walk(_kind, _prefix, i, n) when i > n, do: :ok

    defp walk(kind, prefix, i, n) do
      if visible?(kind, {prefix, i}) do
        walk(kind, prefix, i + 1, n)
      else
        Process.sleep(1)
        walk(kind, prefix, i, n)
      end
    end

    @doc "Starts the echo server registered by both names, on this node, unlinked."
    def start_echo do
      name = {:via, HordeC.Registry, {@reg, :echo}}
      {:ok, pid} = GenServer.start(RegBench.Echo, nil, name: name)
      :yes = :global.register_name(:echo, pid)
      pid
    end

    def ets_bytes(tables),
      do: Enum.sum(for(t <- tables, do: :ets.info(t, :memory))) * :erlang.system_info(:wordsize)

    def client_tables, do: [@reg, :"#{@reg}.Pids", :"#{@reg}.Info"]

    # Elixir's Registry: its meta table and its partitions' tables.
    def registry_tables do
      owners = [
        Process.whereis(@ereg) | for({_, pid, _, _} <- Supervisor.which_children(@ereg), do: pid)
      ]

      for t <- :ets.all(), :ets.info(t, :owner) in owners, do: t
    end
  end

# Modules defined in a script have no object code on disk: keep their binaries for the peers.
:persistent_term.put(:regbench_binaries, [{RegBench.Echo, echo_bin}, {RegBench.Node, node_bin}])

defmodule RegBench do
  @moduledoc false
  alias RegBench.Node, as: N

  @reg :bench_reg
  @ereg :bench_ereg

  def quick?, do: System.get_env("BENCH_QUICK") in ["1", "true"]

  def rounds do
    case Integer.parse(System.get_env("BENCH_ROUNDS", "")) do
      {i, ""} when i > 0 -> i
      _ -> if quick?(), do: 2, else: 5
    end
  end

  def now, do: System.monotonic_time()
  def us(native), do: System.convert_time_unit(native, :native, :nanosecond) / 1000
  def ms(native), do: us(native) / 1000

  def median(list) do
    s = Enum.sort(list)
    Enum.at(s, div(length(s), 2))
  end

  def pct(list, p) do
    s = Enum.sort(list)
    Enum.at(s, min(length(s) - 1, div(length(s) * p, 100)))
  end

  def wait_until(fun, timeout_ms \\ 60_000, what \\ "condition") do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    do_wait(fun, deadline, what)
  end

  defp do_wait(fun, deadline, what) do
    cond do
      fun.() ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        raise "timed out waiting for #{what}"

      true ->
        Process.sleep(5)
        do_wait(fun, deadline, what)
    end
  end

  # ------------------------------------------------------------------ cluster

  def start_peer(cookie, letter) do
    name = ~c"rb#{letter}#{System.get_env("BENCH_TAG", "")}"
    # The runner's own code path minus OTP's (the peer has that): Elixir, Logger, horde_c.
    otp = List.to_string(:code.lib_dir())

    paths =
      for p <- :code.get_path(),
          not String.starts_with?(List.to_string(p), otp),
          p != ~c".",
          do: p

    args = [~c"-setcookie", Atom.to_charlist(cookie), ~c"-pa" | paths] ++ extra_erl_args()

    {:ok, peer, node} =
      :peer.start_link(%{name: name, host: ~c"127.0.0.1", longnames: true, args: args})

    for {mod, bin} <- :persistent_term.get(:regbench_binaries) do
      {:module, ^mod} = :erpc.call(node, :code, :load_binary, [mod, ~c"registry_bench.exs", bin])
    end

    {:ok, _} = :erpc.call(node, :application, :ensure_all_started, [:horde_c])
    {peer, node}
  end

  defp extra_erl_args do
    System.get_env("BENCH_ERL_FLAGS", "")
    |> String.split()
    |> Enum.map(&String.to_charlist/1)
  end

  # ------------------------------------------------------------------ CPU accounting (Linux /proc)

  # [{label, os_pid}] of the six OS processes: BEAM nodes A, B, C and hordec nodes h1..h3.
  def os_procs(nodes, hordecs) do
    beams = Enum.zip(["A", "B", "C"], for(n <- nodes, do: :erpc.call(n, :os, :getpid, [])))

    hs =
      Enum.zip(
        ["h1", "h2", "h3"],
        for(h <- hordecs, do: Integer.to_string(GenServer.call({:hordec, h}, :info).os_pid))
      )

    beams ++ hs
  end

  def clk_tck do
    case System.cmd("getconf", ["CLK_TCK"], stderr_to_stdout: true) do
      {out, 0} -> String.to_integer(String.trim(out))
      _ -> 100
    end
  rescue
    _ -> 100
  end

  # CPU seconds (user + system) used so far by each process, as a map label => seconds.
  def cpu(procs) do
    tck = :persistent_term.get(:regbench_clk_tck)

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

  # ------------------------------------------------------------------ row 6 + row 4 at 100k

  def rss(h), do: GenServer.call({:hordec, h}, :info).rss_bytes
  def replica_stats(h), do: GenServer.call({@reg, h}, :stats, 30_000)

  def wait_idle(hordecs) do
    wait_until(fn -> Enum.all?(hordecs, &replica_stats(&1).idle) end, 60_000, "idle replicas")
  end

  def wait_count(kind, nodes, count) do
    wait_until(
      fn -> Enum.all?(nodes, &(:erpc.call(&1, N, :count, [kind]) == count)) end,
      120_000,
      "#{kind} count #{count} on every node"
    )
  end

  @doc """
  N names registered on this node by `w` concurrent writers, until visible on every node.
  Returns %{total_ms, after_written_ms, cpu, writers}.
  """
  def visibility(kind, prefix, n, nodes, procs, w \\ 100) do
    me = self()
    tag = {:visible, make_ref()}
    for node <- nodes, do: :erpc.call(node, N, :poller, [kind, prefix, n, me, tag])
    ws = N.writers(kind, prefix, n, w, me)
    c0 = cpu(procs)
    t0 = now()
    Enum.each(ws, &send(&1, :go))
    for _ <- ws, do: receive(do: ({:written, _} -> :ok))
    t_written = now()
    for _ <- nodes, do: receive(do: ({^tag, _} -> :ok))
    t_vis = now()
    c1 = cpu(procs)

    %{
      total_ms: ms(t_vis - t0),
      after_written_ms: ms(t_vis - t_written),
      cpu: cpu_diff(c1, c0),
      writers: ws
    }
  end

  def release(pids), do: Enum.each(pids, &send(&1, :release))

  def memory_and_100k(nodes, hordecs, procs) do
    [_a, b | _] = nodes
    n = if quick?(), do: 20_000, else: 100_000
    wait_idle(hordecs)
    rss0 = Map.new(hordecs, &{&1, rss(&1)})
    ets_a0 = N.ets_bytes(N.client_tables())
    ets_b0 = :erpc.call(b, N, :ets_bytes, [N.client_tables()])

    h = visibility(:hordec, :big, n, nodes, procs)
    wait_idle(hordecs)
    # Let transient buffers (stream batches, sync messages) go before sampling RSS.
    Process.sleep(200)
    rss1 = Map.new(hordecs, &{&1, rss(&1)})
    ets_a1 = N.ets_bytes(N.client_tables())
    ets_b1 = :erpc.call(b, N, :ets_bytes, [N.client_tables()])
    release(h.writers)
    wait_count(:hordec, nodes, 0)

    # :pg, the same N
    p = visibility(:pg, :big, n, nodes, procs)
    release(p.writers)
    wait_count(:pg, nodes, 0)

    # Elixir's Registry: the same N names, its tables' growth.
    tables = N.registry_tables()
    e0 = N.ets_bytes(tables)
    ws = N.writers(:registry, :big, n, 100, self())
    Enum.each(ws, &send(&1, :go))
    for _ <- ws, do: receive(do: ({:written, _} -> :ok))
    e1 = N.ets_bytes(tables)
    release(ws)

    %{
      n: n,
      hordec: h,
      pg: p,
      rss_per: for(hn <- hordecs, do: (rss1[hn] - rss0[hn]) / n),
      ets_local: (ets_a1 - ets_a0) / n,
      ets_remote: (ets_b1 - ets_b0) / n,
      registry_ets: (e1 - e0) / n
    }
  end

  # ------------------------------------------------------------------ row 1: lookups

  @lookup_keys 1000
  @batch 100

  def lookups(nodes) do
    [_a, b | _] = nodes
    keys = List.to_tuple(for i <- 1..@lookup_keys, do: {:lk, i})
    local_h = spawn_holder(fn -> for i <- 1..@lookup_keys, do: N.register(:hordec, {:lk, i}) end)

    local_e =
      spawn_holder(fn -> for i <- 1..@lookup_keys, do: N.register(:registry, {:lk, i}) end)

    # the other node's names: one process on B holds them all
    remote_keys = List.to_tuple(for i <- 1..@lookup_keys, do: {:rk, i})
    [rw] = :erpc.call(b, N, :writers, [:hordec, :rk, @lookup_keys, 1, self()])
    send(rw, :go)
    receive(do: ({:written, ^rw} -> :ok))
    wait_until(fn -> Enum.all?(1..@lookup_keys, &N.visible?(:hordec, {:rk, &1})) end)

    batches = if quick?(), do: 500, else: 2000

    samples =
      for _ <- 1..3, reduce: %{hl: [], hr: [], e: []} do
        acc ->
          %{
            hl: batch_times(:hl, keys, batches) ++ acc.hl,
            e: batch_times(:e, keys, batches) ++ acc.e,
            hr: batch_times(:hr, remote_keys, batches) ++ acc.hr
          }
      end

    release([local_h, local_e, rw])
    wait_count(:hordec, nodes, 0)
    %{local: median(samples.hl), remote: median(samples.hr), registry: median(samples.e)}
  end

  defp spawn_holder(fun) do
    me = self()
    ref = make_ref()

    pid =
      spawn(fn ->
        fun.()
        send(me, {ref, :done})

        receive do
          :release -> :ok
        end
      end)

    receive(do: ({^ref, :done} -> pid))
  end

  # Per-lookup mean of each batch of @batch lookups, in ns.
  defp batch_times(which, keys, batches) do
    for b <- 1..batches do
      start = rem(b * @batch, @lookup_keys)
      t0 = now()
      run_batch(which, keys, start, @batch)
      us(now() - t0) * 1000 / @batch
    end
  end

  # One loop per system, so that only the function under test differs.
  defp run_batch(_which, _keys, _i, 0), do: :ok

  defp run_batch(:hl, keys, i, left) do
    [_] = HordeC.Registry.lookup(@reg, elem(keys, rem(i, @lookup_keys)))
    run_batch(:hl, keys, i + 1, left - 1)
  end

  defp run_batch(:hr, keys, i, left) do
    [_] = HordeC.Registry.lookup(@reg, elem(keys, rem(i, @lookup_keys)))
    run_batch(:hr, keys, i + 1, left - 1)
  end

  defp run_batch(:e, keys, i, left) do
    [_] = Registry.lookup(@ereg, elem(keys, rem(i, @lookup_keys)))
    run_batch(:e, keys, i + 1, left - 1)
  end

  # ------------------------------------------------------------------ row 5: via call

  def via_call(nodes, h1) do
    [_a, b | _] = nodes
    pid = :erpc.call(b, N, :start_echo, [])
    via = {:via, HordeC.Registry, {@reg, :echo}}
    glob = {:global, :echo}
    wait_until(fn -> GenServer.whereis(via) != nil and GenServer.whereis(glob) != nil end)
    per = if quick?(), do: 500, else: 2000
    for _ <- 1..500, do: {GenServer.call(via, :ping), GenServer.call(glob, :ping)}

    {v, g, p} =
      Enum.reduce(1..5, {[], [], []}, fn _, {v, g, p} ->
        {call_times(via, :ping, :ping, per) ++ v, call_times(glob, :ping, :ping, per) ++ g,
         call_times({:hordec, h1}, :ping, :pong, per) ++ p}
      end)

    :ok = GenServer.stop(pid)
    wait_count(:hordec, nodes, 0)
    %{via: {median(v), pct(v, 99)}, global: {median(g), pct(g, 99)}, hordec_ping: median(p)}
  end

  @doc "p50 of a lone GenServer.call to hordec's :ping, in µs (the round trip every figure above it pays)."
  def ping_p50(h), do: median(call_times({:hordec, h}, :ping, :pong, 2000))

  defp call_times(dest, req, reply, n) do
    for _ <- 1..n do
      t0 = now()
      ^reply = GenServer.call(dest, req)
      us(now() - t0)
    end
  end

  # ------------------------------------------------------------------ row 3: sequential

  def sequential(kind, n \\ 10_000, slice \\ 1_000) do
    me = self()

    pid =
      spawn(fn ->
        slices =
          for s <- 0..(div(n, slice) - 1) do
            t0 = now()
            for i <- (s * slice + 1)..((s + 1) * slice), do: N.register(kind, {:seq, i})
            slice / (us(now() - t0) / 1_000_000)
          end

        send(me, {:slices, self(), slices})

        receive do
          :release -> :ok
        end
      end)

    slices = receive(do: ({:slices, ^pid, s} -> s))
    {pid, slices}
  end

  # BENCH_SEQ_N: names in the sequential figure (default 10,000), in 10 slices: 100000 shows whether the
  # rate stays flat far beyond the target's size.
  def seq_n do
    case Integer.parse(System.get_env("BENCH_SEQ_N", "")) do
      {n, ""} when n >= 10 -> div(n, 10) * 10
      _ -> 10_000
    end
  end

  def sequential_all(nodes) do
    {hp, h} = sequential(:hordec, seq_n(), div(seq_n(), 10))
    release([hp])
    wait_count(:hordec, nodes, 0)
    {pp, p} = sequential(:pg, seq_n(), div(seq_n(), 10))
    release([pp])
    wait_count(:pg, nodes, 0)
    {ep, e} = sequential(:registry, seq_n(), div(seq_n(), 10))
    release([ep])
    %{hordec: h, pg: p, registry: e}
  end

  # ------------------------------------------------------------------ row 2: concurrent

  def concurrent_round(kind, n, round) do
    ws = N.writers(kind, {:c, round}, n, n, self())
    t0 = now()
    Enum.each(ws, &send(&1, :go))
    for _ <- ws, do: receive(do: ({:written, _} -> :ok))
    rate = n / (us(now() - t0) / 1_000_000)
    release(ws)
    rate
  end

  def concurrent(nodes) do
    n = 1000

    rates =
      for r <- 1..rounds(), reduce: %{hordec: [], pg: []} do
        acc ->
          h = concurrent_round(:hordec, n, r)
          wait_count(:hordec, nodes, 0)
          p = concurrent_round(:pg, n, r)
          wait_count(:pg, nodes, 0)
          %{acc | hordec: [h | acc.hordec], pg: [p | acc.pg]}
      end

    # context: Elixir's Registry (local) and :global, one round each
    e = concurrent_round(:registry, n, :e)
    g = concurrent_round(:global, n, :g)
    Map.merge(rates, %{registry: e, global: g})
  end

  # ------------------------------------------------------------------ row 4 at 10k

  def visibility_10k(nodes, procs) do
    n = 10_000

    for r <- 1..rounds(), reduce: %{hordec: [], pg: []} do
      acc ->
        h = visibility(:hordec, {:v, r}, n, nodes, procs)
        release(h.writers)
        wait_count(:hordec, nodes, 0)
        p = visibility(:pg, {:v, r}, n, nodes, procs)
        release(p.writers)
        wait_count(:pg, nodes, 0)
        %{acc | hordec: [h | acc.hordec], pg: [p | acc.pg]}
    end
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

  @widths [44, 20, 26, 7, 34, 3]
  def row(cols) do
    line =
      Enum.zip(cols, @widths)
      |> Enum.map_join(" | ", fn {c, w} -> String.pad_trailing(c, w) end)

    IO.puts("| " <> line <> " |")
  end

  def sep, do: row(Enum.map(@widths, &String.duplicate("-", &1)))
  def met(true), do: "yes"
  def met(false), do: "NO"

  # "12 µs (A 5, B 2, ...)" per registration, from CPU seconds used for `n` registrations.
  def cpu_line(cpu, n) do
    total = cpu |> Map.values() |> Enum.sum()
    parts = for {k, v} <- Enum.sort(cpu), v > 0, do: "#{k} #{f(v * 1.0e6 / n, 0)}"
    "#{f(total * 1.0e6 / n, 0)} µs (#{Enum.join(parts, ", ")})"
  end
end

# ==================================================================== main

defmodule RegBench.Main do
  @moduledoc false
  alias RegBench.Node, as: N
  import RegBench, only: [f: 1, f: 2, int: 1, row: 1, sep: 0, met: 1, median: 1]

  def run(argv) do
    hordecs = Enum.map(argv, &String.to_atom/1)
    length(hordecs) == 3 || raise "usage: registry_bench.exs H1 H2 H3"
    Node.alive?() || raise "run this script with --name so it is distributed"
    {:ok, _} = Application.ensure_all_started(:horde_c)
    for h <- hordecs, do: :pong = GenServer.call({:hordec, h}, :ping)
    :persistent_term.put(:regbench_clk_tck, RegBench.clk_tck())

    t_start = System.monotonic_time()
    cookie = Node.get_cookie()
    {_pb, b} = RegBench.start_peer(cookie, "b")
    {_pc, c} = RegBench.start_peer(cookie, "c")
    true = :erpc.call(b, Node, :connect, [c])
    nodes = [node(), b, c]
    [h1, h2, h3] = hordecs
    :ok = N.setup([h1, h2, h3], true)
    :ok = :erpc.call(b, N, :setup, [[h2, h3, h1], false])
    :ok = :erpc.call(c, N, :setup, [[h3, h1, h2], false])

    # every replica and every client knows every member before anything is measured
    RegBench.wait_until(
      fn ->
        Enum.all?(hordecs, fn h -> RegBench.replica_stats(h).members == 3 end) and
          Enum.all?(nodes, &(length(:erpc.call(&1, HordeC.Cluster, :members, [:bench_reg])) == 3))
      end,
      30_000,
      "membership"
    )

    :global.sync()
    procs = RegBench.os_procs(nodes, hordecs)

    IO.puts("""

    HordeC registry benchmark: #{length(nodes)} BEAM nodes, #{length(hordecs)} hordec nodes, loopback, #{System.schedulers_online()} cores
      OTP #{System.otp_release()}, Elixir #{System.version()}, hordec #{GenServer.call({:hordec, h1}, :info).version}; HordeC.Registry clients: A -> h1, B -> h2, C -> h3
      A #{node()}, B #{b}, C #{c}; h1..h3 #{Enum.join(hordecs, ", ")}
      extra emulator flags: #{inspect(System.get_env("BENCH_ERL_FLAGS", ""))}
    """)

    ping0 = RegBench.ping_p50(h1)
    mem = RegBench.memory_and_100k(nodes, hordecs, procs)
    ping1 = RegBench.ping_p50(h1)
    IO.puts("  measured: memory and #{mem.n} visibility")
    lk = RegBench.lookups(nodes)
    ping2 = RegBench.ping_p50(h1)
    IO.puts("  measured: lookups")
    via = RegBench.via_call(nodes, h1)
    IO.puts("  measured: via-tuple calls")
    seq = RegBench.sequential_all(nodes)
    IO.puts("  measured: sequential registration")
    conc = RegBench.concurrent(nodes)
    IO.puts("  measured: concurrent registration")
    vis = RegBench.visibility_10k(nodes, procs)
    IO.puts("  measured: 10k visibility\n")

    report(lk, conc, seq, vis, mem, Map.put(via, :pings, {ping0, ping1, ping2}))
    IO.puts("  run time #{f(RegBench.ms(System.monotonic_time() - t_start) / 1000)} s")

    for {h, label} <- Enum.zip(hordecs, ["h1", "h2", "h3"]) do
      s = RegBench.replica_stats(h)

      IO.puts(
        "  #{label} replica: entries #{s.entries} (all released), rejected #{s.rejected}, conflicts #{s.conflicts}"
      )
    end
  end

  defp report(lk, conc, seq, vis, mem, via) do
    sep()
    row(["figure", "HordeC", "baseline", "ratio", "target", "met"])
    sep()

    for {label, v} <- [{"this node", lk.local}, {"another node", lk.remote}] do
      row([
        "lookup p50, process on #{label}",
        "#{f(v, 0)} ns",
        "Registry #{f(lk.registry, 0)} ns",
        "#{f(v / lk.registry, 2)}×",
        "≤ 1.5× Registry.lookup",
        met(v / lk.registry <= 1.5)
      ])
    end

    hc = median(conc.hordec)
    pc = median(conc.pg)

    row([
      "register/s, 1,000 concurrent procs on A",
      "#{int(hc)}/s",
      ":pg.join #{int(pc)}/s",
      "#{f(hc / pc, 2)}×",
      "≥ :pg.join",
      met(hc >= pc)
    ])

    hs = seq_rate(seq.hordec)
    first3 = seq_rate(Enum.take(seq.hordec, 3))
    last3 = seq_rate(Enum.take(seq.hordec, -3))

    row([
      "register/s, 1 process, #{int(RegBench.seq_n())} in sequence",
      "#{int(hs)}/s",
      "—",
      "—",
      "≥ 10,000/s",
      met(hs >= 10_000)
    ])

    row([
      "  per #{int(div(RegBench.seq_n(), 10))} slice: min–max",
      "#{int(Enum.min(seq.hordec))}–#{int(Enum.max(seq.hordec))}/s",
      "last 3 / first 3 slices",
      "#{f(last3 / first3, 2)}×",
      "flat (last 3 ≥ 0.8× first 3)",
      met(last3 / first3 >= 0.8)
    ])

    hv = median(Enum.map(vis.hordec, & &1.total_ms))
    pv = median(Enum.map(vis.pg, & &1.total_ms))

    row([
      "10k registered on A, visible on all 3",
      "#{f(hv)} ms",
      ":pg #{f(pv)} ms",
      "#{f(hv / pv, 2)}×",
      "no later than :pg",
      met(hv <= pv)
    ])

    row([
      "#{div(mem.n, 1000)}k registered on A, visible on all 3",
      "#{f(mem.hordec.total_ms)} ms",
      ":pg #{f(mem.pg.total_ms)} ms",
      "#{f(mem.hordec.total_ms / mem.pg.total_ms, 2)}×",
      "< 1 s",
      met(mem.hordec.total_ms < 1000)
    ])

    {vp50, vp99} = via.via
    {gp50, gp99} = via.global

    row([
      "via GenServer.call A->B, p50 (p99)",
      "#{f(vp50)} µs (#{f(vp99, 0)})",
      ":global #{f(gp50)} µs (#{f(gp99, 0)})",
      "#{f(vp50 / gp50, 2)}×",
      "≤ {:global, name}",
      met(vp50 <= gp50)
    ])

    rss_max = Enum.max(mem.rss_per)

    row([
      "memory/entry: hordec RSS growth (max of 3)",
      "#{f(rss_max, 0)} B",
      "Registry ETS #{f(mem.registry_ets, 0)} B",
      "#{f(rss_max / mem.registry_ets, 2)}×",
      "≤ 250 B",
      met(rss_max <= 250)
    ])

    row([
      "memory/entry: client ETS, A's / B's entry",
      "#{f(mem.ets_local, 0)} / #{f(mem.ets_remote, 0)} B",
      "Registry ETS #{f(mem.registry_ets, 0)} B",
      "#{f(mem.ets_local / mem.registry_ets, 2)}×",
      "≤ 250 B",
      met(mem.ets_local <= 250 and mem.ets_remote <= 250)
    ])

    sep()
    hv_cpu = Enum.reduce(vis.hordec, %{}, &RegBench.cpu_add(&2, &1.cpu))
    pv_cpu = Enum.reduce(vis.pg, %{}, &RegBench.cpu_add(&2, &1.cpu))
    nv = 10_000 * length(vis.hordec)

    IO.puts("""

    Details and context (same run):
      lookup p50: median over batches of 100 lookups of the per-lookup mean (1,000 keys cycled).
      register/s, 1,000 concurrent, per round: HordeC #{Enum.map_join(Enum.reverse(conc.hordec), ", ", &int/1)}; :pg #{Enum.map_join(Enum.reverse(conc.pg), ", ", &int/1)}
        one round each: Registry (local) #{int(conc.registry)}/s, :global #{int(conc.global)}/s
      sequential, per #{int(div(RegBench.seq_n(), 10))} slice (names/s): HordeC #{Enum.map_join(seq.hordec, " ", &int/1)}
        whole #{int(RegBench.seq_n())}: :pg.join #{int(seq_rate(seq.pg))}/s, Registry.register #{int(seq_rate(seq.registry))}/s
        one GenServer.call A -> h1 (:ping) p50 #{f(via.hordec_ping)} µs: a caller waiting for one reply per name makes at most #{int(1.0e6 / via.hordec_ping)}/s
        (the same p50 at the start of the run #{f(elem(via.pings, 0))} µs, after the 100k figure #{f(elem(via.pings, 1))} µs, after the lookups #{f(elem(via.pings, 2))} µs)
      10k visible, per round, ms from the go (from the last write's return):
        HordeC #{Enum.map_join(Enum.reverse(vis.hordec), ", ", &"#{f(&1.total_ms)} (#{f(&1.after_written_ms)})")}
        :pg    #{Enum.map_join(Enum.reverse(vis.pg), ", ", &"#{f(&1.total_ms)} (#{f(&1.after_written_ms)})")}
      #{div(mem.n, 1000)}k visible, ms from the go (from the last write's return): HordeC #{f(mem.hordec.total_ms)} (#{f(mem.hordec.after_written_ms)}); :pg #{f(mem.pg.total_ms)} (#{f(mem.pg.after_written_ms)})
      CPU per registration until visible everywhere, all six OS processes, 10k rounds:
        HordeC #{RegBench.cpu_line(hv_cpu, nv)}
        :pg    #{RegBench.cpu_line(pv_cpu, nv)}
      the same at #{div(mem.n, 1000)}k: HordeC #{RegBench.cpu_line(mem.hordec.cpu, mem.n)}; :pg #{RegBench.cpu_line(mem.pg.cpu, mem.n)}
      hordec RSS growth per entry, h1..h3: #{Enum.map_join(mem.rss_per, ", ", &"#{f(&1, 0)} B")}
    """)
  end

  defp seq_rate(slices), do: length(slices) * 1000 / Enum.sum(Enum.map(slices, &(1000 / &1)))
end

RegBench.Main.run(System.argv())
