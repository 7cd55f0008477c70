defmodule HordeC.ChaosRun do
  @moduledoc """
  The chaos run (`scripts/chaos.sh`): 3 real hordec nodes and 2 BEAM peers on loopback under a random, seeded
  schedule of `kill -9` and restart, SIGSTOP/SIGCONT and `block_peers` partitions, with writes through
  `HordeC.Crdt` (one local process per hordec), `HordeC.Registry` (on both peers) and
  `HordeC.DynamicSupervisor` (start_child and terminate_child from this runner; members: the 3 hordec replicas
  and both peers) all along. After every heal it checks every replica against a reference model and fails on
  the first violation. The BEAM peers are not killed (only hordec nodes are): a peer that dies takes its :peer
  link and the test's view with it.

  Not part of the normal `mix test` (the file name does not end in `_test.exs`). Environment: `CHAOS_SECONDS`
  (default 60), `CHAOS_SEED` (replay a schedule; printed at the start), `CHAOS_ROUND_MS` (length of one
  fault round, default 4000).

  ## What the model assumes

    * CRDT: a key's value after a heal must be one a client could have caused since the last check: for every
      hordec, the last write (put or delete) acknowledged through it; any write whose call failed or timed out
      (it may or may not have been applied); and the value seen at the last check if a write may have been lost.
      A write acknowledged by a hordec that is then `kill -9`ed may be lost legitimately (the ack means "applied
      on that replica", not "replicated"), so a kill turns that node's acknowledged writes into "may be lost".
      Concurrent writes through different nodes are resolved by last-writer-wins (and add-wins for a delete), so
      any of them may be the winner. Besides that, every replica must hold exactly the same map.
    * Registry: for every key, every BEAM node's `lookup` gives the same answer, at most one process (`:unique`),
      and that process is alive. A registration acknowledged to a holder that is still alive must still be
      there (its client re-asserts it after a hordec dies); a holder killed by a `:name_conflict` exit lost the
      race fairly. A holder that exits loses its name everywhere.
    * Supervisor (every child permanent, half C echo workers, half BEAM children): every child whose start was
      acknowledged `{:ok, pid}` and that was not terminated runs exactly once, as both the runner and a peer list
      it (asked by its argument, and for a BEAM child also by its `:pg` group, which sees hidden copies); a child
      whose terminate_child was answered `:ok` never runs again; a start or terminate that timed out (a SIGSTOPped
      replica) may or may not have happened, so that child runs at most once, now or later.
  """
  use HordeC.InteropCase, async: false

  alias HordeC.{Crdt, Registry}
  alias HordeC.DynamicSupervisor, as: DS
  alias HordeC.Test.RegistryHelpers, as: H
  alias HordeC.Test.SupervisorFaultHelpers, as: F
  alias HordeC.Test.SupervisorHelpers, as: SH

  @seconds String.to_integer(System.get_env("CHAOS_SECONDS", "60"))
  @round_ms String.to_integer(System.get_env("CHAOS_ROUND_MS", "4000"))
  @converge 30_000

  @moduletag timeout: (@seconds + 300) * 1_000

  test "chaos" do
    :persistent_term.put({__MODULE__, :t0}, System.monotonic_time(:millisecond))

    seed = String.to_integer(System.get_env("CHAOS_SEED", "#{:rand.uniform(1_000_000)}"))

    :rand.seed(:exsss, {seed, seed * 7 + 1, seed * 13 + 5})
    say("seed #{seed} (replay: CHAOS_SEED=#{seed}), #{@seconds} s, rounds of #{@round_ms} ms")

    sup = :"chaos_sup_#{System.unique_integer([:positive])}"
    # Every hordec hosts a replica of the supervisor from its start (a restarted one too).
    hs = start_hordecs(3, args: ["--supervisor", Atom.to_string(sup)])
    [p1, p2] = for _ <- 1..2, do: start_peer()
    reg = :"chaos_reg_#{System.unique_integer([:positive])}"
    hnodes = Enum.map(hs, & &1.node)

    for {p, order} <- [{p1, hnodes}, {p2, Enum.reverse(hnodes)}] do
      assert {:ok, _} =
               peer_call(p, H, :start_registry, [[name: reg, keys: :unique, hordec: order]])
    end

    # The supervisor: members are the 3 hordec replicas and both peers; this runner is a client only. BEAM
    # children join a :pg group per key (scope on every BEAM node), so copies are counted without the supervisor.
    scope = :"chaos_pg_#{System.unique_integer([:positive])}"
    log = :"chaos_log_#{System.unique_integer([:positive])}"
    Process.register(self(), log)
    :ok = F.start_pg(scope)
    for p <- [p1, p2], do: :ok = peer_call(p, F, :start_pg, [scope])
    sup_opts = [name: sup, strategy: :one_for_one, members: [sup, {sup, p1.node}, {sup, p2.node}]]
    start_supervised!({DS, sup_opts ++ [hordec: hnodes]}, id: sup)
    assert {:ok, _} = peer_call(p1, SH, :start_sup, [sup_opts ++ [hordec: hnodes]])
    assert {:ok, _} = peer_call(p2, SH, :start_sup, [sup_opts ++ [hordec: Enum.reverse(hnodes)]])

    st = %{
      hs: List.to_tuple(hs),
      peers: [p1, p2],
      reg: reg,
      locals: List.to_tuple(for i <- 0..2, do: :"chaos_m_#{i}"),
      model: %{},
      since: %{},
      maybe: %{},
      holders: %{},
      sup: sup,
      scope: scope,
      log: log,
      children: %{},
      child_pids: %{},
      gone: %{},
      n: 0,
      rounds: 0,
      checks: 0,
      faults: %{kill: 0, stop: 0, partition: 0},
      writes: %{ok: 0, failed: 0, registered: 0, children: 0, terminated: 0}
    }

    st = Enum.reduce(0..2, st, &attach(&2, &1))
    deadline = System.monotonic_time(:millisecond) + @seconds * 1_000
    st = loop(st, deadline)

    say(
      "done: #{st.rounds} rounds, #{st.checks} checks passed; faults #{inspect(st.faults)}; " <>
        "writes #{inspect(st.writes)}; #{map_size(st.model)} keys in the model, " <>
        "#{map_size(st.child_pids)} children running"
    )
  end

  defp say(msg) do
    ms = System.monotonic_time(:millisecond) - :persistent_term.get({__MODULE__, :t0}, 0)
    IO.puts("chaos #{ms |> div(100) |> Kernel./(10)}s: #{msg}")
  end

  # ---- the schedule ----------------------------------------------------------------------

  defp loop(st, deadline) do
    if System.monotonic_time(:millisecond) >= deadline do
      st
    else
      st = fault_round(st) |> heal_and_check()
      loop(st, deadline)
    end
  end

  # One round: a fault (or none), writes during it.
  defp fault_round(st) do
    st = %{st | rounds: st.rounds + 1}
    i = :rand.uniform(3) - 1
    h = elem(st.hs, i)

    {st, fault} =
      case :rand.uniform(4) do
        1 ->
          say("round #{st.rounds}: kill -9 #{short(h)}")
          signal(h, "KILL")
          {mark_lost(st, i) |> bump(:kill), {:killed, i}}

        2 ->
          say("round #{st.rounds}: SIGSTOP #{short(h)}")
          signal(h, "STOP")
          {bump(st, :stop), {:stopped, i}}

        3 ->
          others = for j <- 0..2, j != i, do: elem(st.hs, j)

          say(
            "round #{st.rounds}: partition #{short(h)} | #{Enum.map_join(others, ",", &short/1)}"
          )

          ctl(h, {:block_peers, Enum.map(others, & &1.node)})
          for o <- others, do: ctl(o, {:block_peers, [h.node]})
          {bump(st, :partition), {:partitioned, i}}

        4 ->
          say("round #{st.rounds}: no fault")
          {st, :none}
      end

    st = writes(st, fault, System.monotonic_time(:millisecond) + @round_ms)
    Map.put(st, :fault, fault)
  end

  defp bump(st, k), do: %{st | faults: Map.update!(st.faults, k, &(&1 + 1))}

  defp writes(st, fault, until) do
    if System.monotonic_time(:millisecond) >= until do
      st
    else
      st =
        case :rand.uniform(10) do
          n when n <= 6 -> crdt_write(st, fault)
          n when n <= 8 -> reg_write(st)
          _ -> sup_write(st, fault)
        end

      Process.sleep(:rand.uniform(40))
      writes(st, fault, until)
    end
  end

  defp usable?({:killed, i}, i), do: false
  defp usable?(_, _), do: true

  defp crdt_write(st, fault) do
    i = Enum.random(for j <- 0..2, usable?(fault, j), do: j)
    key = "k#{:rand.uniform(20)}"
    st = %{st | n: st.n + 1}
    {op, value} = if :rand.uniform(5) == 1, do: {:delete, :absent}, else: {:put, {st.n, i}}
    local = elem(st.locals, i)

    result =
      try do
        case op do
          :put -> Crdt.put(local, key, value, 1_000)
          :delete -> Crdt.delete(local, key, 1_000)
        end

        :ok
      catch
        :exit, _ -> :failed
      end

    case result do
      :ok ->
        since = Map.update(st.since, key, %{i => value}, &Map.put(&1, i, value))
        %{st | since: since, writes: %{st.writes | ok: st.writes.ok + 1}}

      :failed ->
        maybe = Map.update(st.maybe, key, MapSet.new([value]), &MapSet.put(&1, value))
        %{st | maybe: maybe, writes: %{st.writes | failed: st.writes.failed + 1}}
    end
  end

  # A third of the time a holder exits instead (its name must then go everywhere), so names keep changing hands.
  defp reg_write(st) do
    if map_size(st.holders) > 0 and :rand.uniform(3) == 1,
      do: reg_release(st),
      else: reg_register(st)
  end

  defp reg_release(st) do
    {pid, _} = Enum.random(st.holders)
    send(pid, {:stop, :shutdown})
    %{st | holders: Map.delete(st.holders, pid)}
  end

  defp reg_register(st) do
    p = Enum.random(st.peers)
    key = "name#{:rand.uniform(10)}"
    holder = peer_call(p, H, :holder, [self()])

    case (try do
            H.run(holder, Registry, :register, [st.reg, key, nil])
          catch
            _, _ -> :failed
          end) do
      {:ok, _} ->
        %{
          st
          | holders: Map.put(st.holders, holder, {p, key}),
            writes: %{st.writes | registered: st.writes.registered + 1}
        }

      _ ->
        send(holder, {:stop, :normal})
        st
    end
  end

  # A child of the supervisor: a C echo worker or a BEAM child, permanent, its key in its argument. A start
  # that fails or times out may still have started it: such a child may run (once) or not at all. Now and then
  # a child the last check saw is terminated instead, in any round: a terminate answered :ok holds even when a
  # failover or the far side of a partition writes the child again meanwhile (the replica that answered
  # terminates such a copy; it was a finding of this run, seeds 658 and 153862).
  defp sup_write(st, _fault) do
    if map_size(st.child_pids) > 0 and :rand.uniform(4) == 1,
      do: sup_terminate(st),
      else: sup_start(st)
  end

  defp sup_start(st) do
    key = map_size(st.children) + 1

    spec =
      if rem(key, 2) == 0,
        do: F.c_spec(key, :permanent),
        else: F.beam_spec(key, :permanent, st.scope, {st.log, node()})

    sup = st.sup
    task = Task.async(fn -> DS.start_child(sup, spec) end)

    {status, st} =
      case Task.yield(task, 3_000) || Task.shutdown(task, :brutal_kill) do
        {:ok, {:ok, _pid}} ->
          {:acked, %{st | writes: %{st.writes | children: st.writes.children + 1}}}

        other ->
          say("  start_child #{key}: #{inspect(other)}: it may or may not run")
          {:maybe, st}
      end

    %{st | children: Map.put(st.children, key, status)}
  end

  defp sup_terminate(st) do
    {key, pid} = Enum.random(st.child_pids)
    sup = st.sup
    task = Task.async(fn -> DS.terminate_child(sup, pid) end)

    status =
      case Task.yield(task, 3_000) || Task.shutdown(task, :brutal_kill) do
        {:ok, :ok} -> :terminated
        _ -> :maybe_terminated
      end

    say("  terminate_child #{key} #{inspect(pid)}: #{status}")

    %{
      st
      | children: Map.put(st.children, key, status),
        gone: Map.put(st.gone, key, pid),
        child_pids: Map.delete(st.child_pids, key),
        writes: %{st.writes | terminated: st.writes.terminated + 1}
    }
  end

  # A kill -9 of node i: what it acknowledged since the last check may be lost.
  defp mark_lost(st, i) do
    {since, maybe} =
      Enum.reduce(st.since, {%{}, st.maybe}, fn {k, per}, {since, maybe} ->
        case Map.pop(per, i) do
          {nil, per} ->
            {Map.put(since, k, per), maybe}

          {v, per} ->
            lost = Map.get(maybe, k, MapSet.new()) |> MapSet.put(v) |> MapSet.put({:settled})
            {Map.put(since, k, per), Map.put(maybe, k, lost)}
        end
      end)

    %{st | since: since, maybe: maybe}
  end

  # ---- heal and check ---------------------------------------------------------------------

  defp heal_and_check(st) do
    st =
      case st.fault do
        {:killed, i} ->
          h = elem(st.hs, i)
          others = for j <- 0..2, j != i, do: elem(st.hs, j).node

          h2 =
            start_hordec(
              name: h.name,
              connect: others,
              args: ["--supervisor", Atom.to_string(st.sup)]
            )

          say("heal: #{short(h2)} restarted")
          st = %{st | hs: put_elem(st.hs, i, h2)}
          attach(st, i)

        {:stopped, i} ->
          signal(elem(st.hs, i), "CONT")
          say("heal: SIGCONT #{short(elem(st.hs, i))}")
          st

        {:partitioned, i} ->
          h = elem(st.hs, i)
          others = for j <- 0..2, j != i, do: elem(st.hs, j)
          ctl(h, {:unblock_peers, Enum.map(others, & &1.node)})
          for o <- others, do: ctl(o, {:unblock_peers, [h.node]})
          for o <- others, do: ctl(h, {:connect, o.node})
          say("heal: partition lifted")
          st

        :none ->
          st
      end

    # Neighbour sets again (a restarted replica starts without them; setting them twice is harmless).
    neighbours = for h <- Tuple.to_list(st.hs), do: {:m, h.node}

    for l <- Tuple.to_list(st.locals),
        do: eventually(fn -> Crdt.set_neighbours(l, neighbours) == :ok end)

    st = check_crdt(st)
    st = check_registry(st)
    st = check_supervisor(st)
    %{st | checks: st.checks + 1}
  end

  defp attach(st, i) do
    local = elem(st.locals, i)
    h = elem(st.hs, i)
    _ = stop_supervised(local)

    spec =
      Supervisor.child_spec({Crdt, [name: local, hordec: h.node, replica: :m]},
        id: local,
        restart: :temporary
      )

    eventually(fn -> match?({:ok, _}, start_supervised(spec)) end, 10_000)
    st
  end

  defp candidates(st, k) do
    per = Map.get(st.since, k, %{})
    maybe = Map.get(st.maybe, k, MapSet.new())
    settled = Map.get(st.model, k, :absent)
    base = MapSet.new(Map.values(per)) |> MapSet.union(MapSet.delete(maybe, {:settled}))

    if map_size(per) == 0 or MapSet.member?(maybe, {:settled}),
      do: MapSet.put(base, settled),
      else: base
  end

  defp check_crdt(st) do
    locals = Tuple.to_list(st.locals)

    views =
      try do
        eventually(
          fn ->
            maps = Enum.map(locals, &Crdt.to_map/1)
            if Enum.uniq(maps) |> length() == 1, do: maps
          end,
          @converge
        )
      rescue
        e ->
          maps =
            for l <- locals do
              try do
                Crdt.to_map(l)
              catch
                _, r -> {:unreachable, r}
              end
            end

          violation(
            st,
            "CRDT replicas did not converge within #{@converge} ms: #{inspect(maps)}",
            e
          )
      end

    map = hd(views)

    keys =
      Enum.uniq(Map.keys(map) ++ Map.keys(st.model) ++ Map.keys(st.since) ++ Map.keys(st.maybe))

    bad =
      Enum.flat_map(keys, fn k ->
        got = Map.get(map, k, :absent)
        cands = candidates(st, k)
        if MapSet.member?(cands, got), do: [], else: [{k, got, MapSet.to_list(cands)}]
      end)

    if bad != [] do
      violation(st, "CRDT values outside the model (key, value, allowed): #{inspect(bad)}", nil)
    end

    say("check #{st.checks + 1}: CRDT ok, #{map_size(map)} keys identical on 3 replicas")
    %{st | model: map, since: %{}, maybe: %{}}
  end

  defp check_registry(st) do
    keys = for i <- 1..10, do: "name#{i}"

    views =
      try do
        eventually(
          fn ->
            vs =
              for p <- st.peers,
                  do: for(k <- keys, do: {k, peer_call(p, Registry, :lookup, [st.reg, k])})

            if Enum.uniq(vs) |> length() == 1, do: hd(vs)
          end,
          @converge
        )
      rescue
        e -> violation(st, "registry views did not agree within #{@converge} ms", e)
      end

    bad =
      for {k, entries} <- views,
          length(entries) > 1 or
            Enum.any?(entries, fn {pid, _} ->
              not peer_call(owner_peer(st, pid), Process, :alive?, [pid])
            end),
          do: {k, entries}

    if bad != [], do: violation(st, "registry: several or dead owners: #{inspect(bad)}", nil)

    # Holders still alive must still hold their names.
    {alive, dead} =
      Enum.split_with(st.holders, fn {pid, {p, _}} -> peer_call(p, Process, :alive?, [pid]) end)

    missing =
      for {pid, {_, key}} <- alive,
          entries = elem(List.keyfind(views, key, 0), 1),
          not Enum.any?(entries, fn {owner, _} -> owner == pid end),
          do: {key, pid}

    if missing != [],
      do: violation(st, "registry: live holders lost their names: #{inspect(missing)}", nil)

    owned = Enum.count(views, fn {_, e} -> e != [] end)

    say(
      "check #{st.checks + 1}: registry ok, #{owned} names owned, #{length(dead)} holders lost a race"
    )

    %{st | holders: Map.new(alive)}
  end

  # Every permanent child acknowledged (and not terminated) runs exactly once, one that may have started (or may
  # have been terminated) at most once, nothing else runs; the runner and p2 list the same children; a BEAM
  # child's :pg group holds exactly its listed pid.
  defp check_supervisor(st) do
    [_, p2] = st.peers

    view =
      try do
        eventually(fn -> sup_view(st, p2) end, @converge, 200)
      rescue
        e -> violation(st, "supervisor did not converge within #{@converge} ms", e)
      end

    flush_starts()
    maybe = Enum.count(st.children, fn {_, s} -> s in [:maybe, :maybe_terminated] end)

    say(
      "check #{st.checks + 1}: supervisor ok, #{map_size(view)} children running exactly once " <>
        "(#{maybe} uncertain before the check)"
    )

    # A child seen running is permanent from now on. An uncertain start or terminate stays uncertain: the request
    # may still be carried out later (one queued in a stopped node, say), so such a child may run once or not.
    children =
      Map.new(st.children, fn {k, s} ->
        if Map.has_key?(view, k) and s != :maybe_terminated, do: {k, :acked}, else: {k, s}
      end)

    %{st | children: children, child_pids: view}
  end

  defp sup_view(st, p2) do
    here = DS.which_children(st.sup)
    there = peer_call(p2, DS, :which_children, [st.sup])
    assert Enum.sort(here) == Enum.sort(there), "the runner and p2 list different children"
    pids = for {:undefined, pid, :worker, _} <- here, do: pid
    assert length(pids) == length(here), "#{length(here) - length(pids)} children not running"

    by_key =
      pids
      |> Task.async_stream(&{F.key_of(&1, 2_000), &1}, max_concurrency: 8, timeout: 5_000)
      |> Enum.reduce(%{}, fn {:ok, {k, pid}}, acc -> Map.update(acc, k, [pid], &[pid | &1]) end)

    for {k, pids} <- by_key do
      assert length(pids) == 1, "child #{k} runs #{length(pids)} times: #{inspect(pids)}"
      status = Map.get(st.children, k)

      assert status in [:acked, :maybe, :maybe_terminated],
             "child #{k} runs (#{inspect(pids)}) but should not: #{inspect(status)} " <>
               "(it was #{inspect(Map.get(st.gone, k))})"

      if rem(k, 2) == 1,
        do:
          assert(
            F.copies(st.scope, k) == pids,
            "child #{k}: :pg copies #{inspect(F.copies(st.scope, k))}"
          )
    end

    for {k, :acked} <- st.children,
        do: assert(Map.has_key?(by_key, k), "permanent child #{k} does not run")

    Map.new(by_key, fn {k, [pid]} -> {k, pid} end)
  end

  defp flush_starts do
    receive do
      {:fault_started, _, _, _} -> flush_starts()
    after
      0 -> :ok
    end
  end

  defp owner_peer(st, pid), do: Enum.find(st.peers, &(&1.node == node(pid))) || hd(st.peers)

  defp violation(st, what, e) do
    say("VIOLATION after round #{st.rounds}: #{what}")
    for h <- Tuple.to_list(st.hs), do: say("#{short(h)} log tail:\n" <> tail(log(h)))

    flunk(
      "chaos violation (replay with CHAOS_SEED): #{what}#{if e, do: "\n" <> Exception.message(e), else: ""}"
    )
  end

  defp tail(bin), do: bin |> String.split("\n") |> Enum.take(-15) |> Enum.join("\n")
  defp short(%{node: n}), do: n |> Atom.to_string() |> String.split("@") |> hd()
end
