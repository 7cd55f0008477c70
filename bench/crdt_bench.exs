# CRDT replication benchmark against real hordec nodes on loopback (started by run_crdt_bench.sh).
# Usage: elixir --name bench@127.0.0.1 --cookie C crdt_bench.exs h1@127.0.0.1 h2@127.0.0.1 ...
# Reports numbers; asserts nothing about timings.

defmodule CrdtBench do
  @keys 100_000
  @chunk 10_000

  def main(nodes) do
    nodes = Enum.map(nodes, &String.to_atom/1)
    Enum.each(nodes, fn n -> true = Node.connect(n) end)

    IO.puts(
      "hordec CRDT benchmark — #{@keys} keys, key {:key, i}, value a 16-byte binary; loopback, #{System.schedulers_online()} cores\n"
    )

    for n <- [3, 5], n <= length(nodes), do: run(Enum.take(nodes, n))
  end

  defp call(node, name, req, t \\ 60_000), do: GenServer.call({name, node}, req, t)
  defp stats(node, name), do: call(node, name, :stats)
  defp rss(node), do: GenServer.call({:hordec, node}, :info).rss_bytes
  defp now, do: System.monotonic_time(:microsecond)

  defp wait_keys(nodes, name, count) do
    if Enum.all?(nodes, &(stats(&1, name).keys >= count)),
      do: now(),
      else:
        (
          Process.sleep(2)
          wait_keys(nodes, name, count)
        )
  end

  defp wait_idle(nodes, name) do
    if Enum.all?(nodes, &stats(&1, name).idle),
      do: :ok,
      else:
        (
          Process.sleep(5)
          wait_idle(nodes, name)
        )
  end

  defp received(nodes, name), do: nodes |> Enum.map(&stats(&1, name).bytes_received) |> Enum.sum()

  defp run(nodes) do
    name = :"bench_#{length(nodes)}"
    [first | rest] = nodes
    rss0 = Map.new(nodes, &{&1, rss(&1)})
    for n <- nodes, do: {:ok, _} = GenServer.call({:hordec, n}, {:crdt_start, name, []})
    for n <- nodes, do: :ok = call(n, name, {:set_neighbours, Enum.map(nodes, &{name, &1})})
    wait_idle(nodes, name)
    base = received(rest, name)

    # 1. 100k keys written on one replica until visible on every replica
    t0 = now()

    for c <- 0..(div(@keys, @chunk) - 1) do
      m =
        Map.new(1..@chunk, fn i ->
          k = c * @chunk + i
          {{:key, k}, <<k::128>>}
        end)

      :ok = call(first, name, {:merge, m})
    end

    t_written = now()
    t_visible = wait_keys(nodes, name, @keys)
    wait_idle(nodes, name)
    initial_bytes = received(rest, name) - base

    # 2. updates afterwards: overwrite 10k existing keys
    base2 = received(rest, name)
    upd = Map.new(1..@chunk, fn k -> {{:key, k}, <<k + 1::128>>} end)
    t1 = now()
    :ok = call(first, name, {:merge, upd})
    wait_until_value(rest, name, {:key, @chunk}, <<@chunk + 1::128>>)
    t_upd = now()
    wait_idle(nodes, name)
    update_bytes = received(rest, name) - base2

    # 3. a replica restarted empty catches up (repair, not deltas)
    last = List.last(nodes)
    :ok = GenServer.call({:hordec, last}, {:crdt_stop, name})
    {:ok, _} = GenServer.call({:hordec, last}, {:crdt_start, name, []})
    t2 = now()
    :ok = call(last, name, {:set_neighbours, Enum.map(nodes, &{name, &1})})
    t_repaired = wait_keys([last], name, @keys)
    wait_idle(nodes, name)
    repair_bytes = stats(last, name).bytes_received

    s = stats(first, name)
    term_bytes = s.key_bytes + s.value_bytes
    rss_per_key = Enum.map(nodes, fn n -> (rss(n) - rss0[n]) / @keys end) |> Enum.max()

    IO.puts("""
    #{length(nodes)} hordec nodes (replica #{name}):
      100k keys merged on one replica (#{div(@keys, @chunk)} calls of #{@chunk}):
        writes applied locally        #{ms(t_written - t0)} ms
        visible on every replica      #{ms(t_visible - t0)} ms after the first write (#{ms(t_visible - t_written)} ms after the last)
      initial sync bytes on the wire  #{Float.round(initial_bytes / (@keys * length(rest)), 1)} B/key per receiving replica (key+value term bytes: #{Float.round(term_bytes / @keys, 1)} B/key)
      10k overwrites afterwards       visible in #{ms(t_upd - t1)} ms, #{Float.round(update_bytes / (@chunk * length(rest)), 1)} B/update per receiving replica
      replica restarted empty         caught up with 100k keys in #{ms(t_repaired - t2)} ms, #{Float.round(repair_bytes / @keys, 1)} B/key received
      hordec RSS growth               #{Float.round(rss_per_key, 1)} B/key (of which #{Float.round(term_bytes / @keys, 1)} term bytes)
    """)

    for n <- nodes, do: GenServer.call({:hordec, n}, {:crdt_stop, name})
  end

  defp wait_until_value(nodes, name, key, value) do
    if Enum.all?(nodes, &(call(&1, name, {:get, key}) == {:ok, value})),
      do: :ok,
      else:
        (
          Process.sleep(1)
          wait_until_value(nodes, name, key, value)
        )
  end

  defp ms(us), do: Float.round(us / 1000, 1)
end

CrdtBench.main(System.argv())
