defmodule HordeC.ConcurrencyTest do
  @moduledoc "Many callers at once, from several BEAM nodes: every caller gets its own reply."
  use HordeC.InteropCase, async: true

  test "100 concurrent callers (70 local, 30 on a peer) each get their own reply" do
    h = start_hordec()
    p = start_peer()

    local_terms = for i <- 1..70, do: {:local, i, :crypto.strong_rand_bytes(rem(i, 7) * 300)}
    peer_terms = for i <- 1..30, do: {:peer, i, List.duplicate(i, i)}

    peer_task =
      Task.async(fn ->
        peer_call(p, PeerHelpers, :concurrent_echo, [h.node, peer_terms], 30_000)
      end)

    local = PeerHelpers.concurrent_echo(h.node, local_terms)
    remote = Task.await(peer_task, 30_000)

    for {term, reply} <- local ++ remote, do: assert(reply === term)
    assert length(local) == 70 and length(remote) == 30
  end

  test "concurrent calls to many C workers" do
    h = start_hordec()
    workers = for _ <- 1..20, do: elem(ctl(h, :spawn_worker), 1)

    results =
      workers
      |> Enum.with_index()
      |> Task.async_stream(
        fn {cpid, i} -> for j <- 1..20, do: {{i, j}, GenServer.call(cpid, {:echo, {i, j}})} end,
        max_concurrency: 20
      )
      |> Enum.flat_map(fn {:ok, list} -> list end)

    assert length(results) == 400
    for {expected, reply} <- results, do: assert(reply == expected)
  end
end
