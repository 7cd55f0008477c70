# Distribution benchmark: BEAM -> hordec vs BEAM -> BEAM, in the same run.
#
#   elixir --name bench_runner@127.0.0.1 --cookie C bench/dist_bench.exs HORDEC_NODE
#
# (bench/run_dist_bench.sh does all of it: build, epmd, hordec, this script.)
# This script starts the BEAM baseline itself: a :peer node running a trivial echo
# GenServer that also counts plain messages (the sink for the one-way test).
#
# Measured, for each target:
#   * GenServer.call round trip ({:echo, payload}): p50/p99 in µs and calls/s,
#     with 1 caller and with 8 callers, small payload and 1 KB payload;
#   * one-way throughput: N plain sends, then one call as the end marker (messages on one
#     connection are ordered, so the reply comes after all N were handled);
#   * hordec RSS from its :info, before and after.
# Numbers only: nothing here passes or fails on timings.
#
# Environment: BENCH_CALLS (per call test, default 20000), BENCH_SENDS (per one-way test,
# default 200000), BENCH_WARMUP (default 2000).

defmodule Bench do
  def calls, do: int_env("BENCH_CALLS", 20_000)
  def sends, do: int_env("BENCH_SENDS", 200_000)
  def warmup, do: int_env("BENCH_WARMUP", 2_000)

  defp int_env(var, default) do
    case Integer.parse(System.get_env(var, "")) do
      {i, ""} when i > 0 -> i
      _ -> default
    end
  end

  def start_peer(cookie) do
    {module, binary} = compile_echo_server()
    name = ~c"bench_peer_#{System.unique_integer([:positive])}"

    {:ok, pid, node} =
      :peer.start(%{
        name: name,
        host: ~c"127.0.0.1",
        longnames: true,
        args: [~c"-setcookie", Atom.to_charlist(cookie)]
      })

    {:module, ^module} =
      :erpc.call(node, :code, :load_binary, [module, ~c"bench_echo_server.beam", binary])

    {:ok, _} = :erpc.call(node, :gen_server, :start, [{:local, :bench_echo}, module, [], []])
    {pid, node}
  end

  defp compile_echo_server do
    {:module, mod, binary, _} =
      Module.create(
        Bench.PeerEcho,
        quote do
          @behaviour :gen_server
          def init(_), do: {:ok, 0}
          def handle_call({:echo, t}, _from, n), do: {:reply, t, n}
          def handle_call(:count, _from, n), do: {:reply, n, n}
          def handle_cast(_, n), do: {:noreply, n}
          def handle_info(_msg, n), do: {:noreply, n + 1}
        end,
        Macro.Env.location(__ENV__)
      )

    {mod, binary}
  end

  # --- call round trips ------------------------------------------------------------------

  def call_bench(dest, payload, callers, total) do
    for _ <- 1..warmup(), do: ^payload = GenServer.call(dest, {:echo, payload})
    per = div(total, callers)
    t0 = System.monotonic_time()

    lat =
      1..callers
      |> Enum.map(fn _ ->
        Task.async(fn ->
          one_caller(dest, payload, per, [])
        end)
      end)
      |> Task.await_many(:infinity)
      |> List.flatten()

    wall = System.monotonic_time() - t0
    sorted = Enum.sort(lat)
    n = length(sorted)

    %{
      p50: us(Enum.at(sorted, div(n * 50, 100))),
      p99: us(Enum.at(sorted, min(n - 1, div(n * 99, 100)))),
      rate: n / (System.convert_time_unit(wall, :native, :microsecond) / 1_000_000)
    }
  end

  defp one_caller(_dest, _payload, 0, acc), do: acc

  defp one_caller(dest, payload, left, acc) do
    t = System.monotonic_time()
    ^payload = GenServer.call(dest, {:echo, payload})
    one_caller(dest, payload, left - 1, [System.monotonic_time() - t | acc])
  end

  defp us(native), do: System.convert_time_unit(native, :native, :nanosecond) / 1000

  # --- one-way ----------------------------------------------------------------------------

  def oneway_hordec(hnode, msg, n) do
    dest = {:hordec, hnode}
    before = GenServer.call(dest, :info).msgs_in
    t0 = System.monotonic_time()
    send_n(dest, msg, n)
    info = GenServer.call(dest, :info, 120_000)
    wall = System.monotonic_time() - t0
    got = info.msgs_in - before - 1
    {n / seconds(wall), got}
  end

  def oneway_beam(pnode, msg, n) do
    dest = {:bench_echo, pnode}
    before = GenServer.call(dest, :count)
    t0 = System.monotonic_time()
    send_n(dest, msg, n)
    count = GenServer.call(dest, :count, 120_000)
    wall = System.monotonic_time() - t0
    {n / seconds(wall), count - before}
  end

  defp send_n(_dest, _msg, 0), do: :ok

  defp send_n(dest, msg, n) do
    send(dest, msg)
    send_n(dest, msg, n - 1)
  end

  defp seconds(native), do: System.convert_time_unit(native, :native, :microsecond) / 1_000_000

  # --- output ----------------------------------------------------------------------------

  def fmt_lat(%{p50: p50, p99: p99}), do: :io_lib.format("~.1f / ~.1f", [p50, p99]) |> to_string()
  def fmt_rate(r), do: "#{round(r) |> Integer.to_string() |> group()}/s"

  defp group(s),
    do: s |> String.reverse() |> String.replace(~r/(\d{3})(?=\d)/, "\\1,") |> String.reverse()

  def row(label, a, b),
    do:
      IO.puts(
        "| #{String.pad_trailing(label, 36)} | #{String.pad_leading(a, 18)} | #{String.pad_leading(b, 18)} |"
      )

  def sep,
    do:
      IO.puts(
        "|#{String.duplicate("-", 38)}|#{String.duplicate("-", 20)}|#{String.duplicate("-", 20)}|"
      )
end

[hnode_str | _] = System.argv() ++ [nil]
hnode_str || raise "usage: elixir --name X --cookie C bench/dist_bench.exs HORDEC_NODE"
hnode = String.to_atom(hnode_str)
Node.alive?() || raise "run this script with --name/--sname so it is distributed"

:pong = GenServer.call({:hordec, hnode}, :ping)
info0 = GenServer.call({:hordec, hnode}, :info)
{peer, pnode} = Bench.start_peer(Node.get_cookie())

small = {:req, 42, "abc"}
kb = :binary.copy(<<7>>, 1024)
calls = Bench.calls()
sends = Bench.sends()

IO.puts("""

HordeC distribution benchmark
  hordec: #{hnode} (version #{info0.version}, os pid #{info0.os_pid}, ticktime #{info0.ticktime} s)
  BEAM baseline: #{pnode} (trivial :gen_server echo + counting sink)
  runner: #{node()} on OTP #{System.otp_release()}, Elixir #{System.version()}, #{System.schedulers_online()} schedulers
  #{calls} calls per call test (after #{Bench.warmup()} warm-up), #{sends} messages per one-way test
""")

Bench.sep()
Bench.row("test", "BEAM -> hordec", "BEAM -> BEAM")
Bench.sep()

for {pname, payload} <- [{"small", small}, {"1 KB", kb}], callers <- [1, 8] do
  h = Bench.call_bench({:hordec, hnode}, payload, callers, calls)
  b = Bench.call_bench({:bench_echo, pnode}, payload, callers, calls)
  label = "call #{pname}, #{callers} caller#{if callers > 1, do: "s", else: ""}"
  Bench.row(label <> ": p50 / p99 µs", Bench.fmt_lat(h), Bench.fmt_lat(b))
  Bench.row(label <> ": calls/s", Bench.fmt_rate(h.rate), Bench.fmt_rate(b.rate))
end

for {pname, msg} <- [{"small", small}, {"1 KB", kb}] do
  {hr, hgot} = Bench.oneway_hordec(hnode, msg, sends)
  {br, bgot} = Bench.oneway_beam(pnode, msg, sends)
  Bench.row("one-way #{pname}: msgs/s", Bench.fmt_rate(hr), Bench.fmt_rate(br))

  if hgot < sends or bgot < sends do
    IO.puts("  (!) receivers counted hordec=#{hgot} beam=#{bgot} of #{sends} messages")
  end
end

info1 = GenServer.call({:hordec, hnode}, :info)
Bench.sep()
mb = fn b -> :io_lib.format("~.1f MB", [b / 1_048_576]) |> to_string() end
Bench.row("hordec RSS before / after", "#{mb.(info0.rss_bytes)} / #{mb.(info1.rss_bytes)}", "")
Bench.sep()
:peer.stop(peer)
