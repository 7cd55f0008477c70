defmodule HordeC.DynamicSupervisorPartitionTest do
  @moduledoc """
  `HordeC.DynamicSupervisor` under partitions and a graceful hordec shutdown, on real processes
  (docs/supervisor.md §3, §5):

    * `HordeC.UniformDistribution`, split `{h1, p1} | {h2, p2}`: both sides run every child
      (duplicates while split); after the heal the records decide, exactly one copy of each child
      runs, its name (`HordeC.Registry`) resolves to it everywhere, and no child is lost;
    * `HordeC.UniformQuorumDistribution`, split `{h1, p1} | {h2, h3, p2}`: the minority stops its
      children and refuses new ones, the majority runs every permanent child; after the heal
      each runs once;
    * SIGTERM to a hordec running C workers: they come back on the other hordec with their ids,
      before the hordec is gone, and it exits 0.

  A partition cuts every link between the sides: hordec ↔ hordec and hordec ↔ BEAM with the
  control process's `block_peers` on the hordec nodes (both ways), BEAM ↔ BEAM with
  `:erlang.disconnect_node/1`. The peers are started with `-connect_all false`: with OTP 25's
  `prevent_overlapping_partitions`, the runner's `global` would otherwise disconnect both peers
  when one drops its link to the other (and a peer halts without its link to the runner). The
  runner stays connected to every node, as an observer: it is neither a member nor a client of
  the supervisors under partition.

  Nothing is taken on the supervisor's word: BEAM children are counted on their nodes
  (`local_copies/0`) and report their starts and ends to this test process; C workers are
  counted by each hordec's process count and answer their argument, which carries their key.
  """
  use HordeC.InteropCase, async: false

  @moduletag timeout: 120_000

  alias HordeC.DynamicSupervisor, as: DS
  alias HordeC.DynamicSupervisor.Member
  alias HordeC.Registry
  alias HordeC.Test.RegistryHelpers, as: RH
  alias HordeC.Test.SupervisorHelpers, as: H
  alias HordeC.Test.SupervisorPartitionHelpers, as: P

  @converge 10_000

  setup do
    n = System.unique_integer([:positive])
    log = :"plog_#{n}"
    Process.register(self(), log)
    %{sup: :"psup_#{n}", reg: :"preg_#{n}", log: {log, node()}}
  end

  # ------------------------------------------------------------------ cluster

  defp start_peers(n), do: for(_ <- 1..n, do: start_peer(args: ["-connect_all", "false"]))

  defp start_sup_on(peer, opts), do: assert({:ok, _} = peer_call(peer, H, :start_sup, [opts]))

  defp alive_members(peer, sup) do
    for(%Member{status: :alive, name: m} <- peer_call(peer, DS, :members_info, [sup]), do: m)
    |> Enum.sort()
  end

  defp processes(h), do: ctl(h, :info).processes

  # A side is %{hordecs: [Hordec], peers: [Peer]}.
  defp nodes(side), do: Enum.map(side.hordecs ++ side.peers, & &1.node)

  # Cuts every link between the two sides and waits until no node of one lists a node of the
  # other.
  defp split(a, b) do
    for {x, y} <- [{a, b}, {b, a}] do
      for h <- x.hordecs, do: assert(ctl(h, {:block_peers, nodes(y)}) == :ok)
      beam_y = Enum.map(y.peers, & &1.node)
      for p <- x.peers, do: peer_call(p, P, :disconnect, [beam_y])
    end

    eventually(fn -> not linked?(a, b) end, @converge)
  end

  defp heal(a, b) do
    for {x, y} <- [{a, b}, {b, a}],
        h <- x.hordecs,
        do: assert(ctl(h, {:unblock_peers, nodes(y)}) == :ok)

    for p <- a.peers, q <- b.peers, do: assert(peer_call(p, Node, :connect, [q.node]))

    # The hordec nodes re-dial each other by themselves.
    eventually(
      fn ->
        Enum.all?(a.hordecs, fn h ->
          Enum.all?(b.hordecs, &(&1.node in peers(h) and h.node in peers(&1)))
        end)
      end,
      @converge
    )
  end

  # Whether any node of one side is still connected to a node of the other.
  defp linked?(a, b) do
    Enum.any?(a.hordecs ++ b.hordecs, fn h ->
      other = if h in a.hordecs, do: b, else: a
      Enum.any?(nodes(other), &(&1 in peers(h)))
    end) or
      Enum.any?(a.peers, fn p ->
        Enum.any?(b.peers, &(&1.node in peer_call(p, Node, :list, [[:connected]])))
      end)
  end

  # ------------------------------------------------------------------ children

  # Keys `{tag, i}` whose child (built by `spec_fun`) placement puts on each node of `want`
  # (`%{node => count}`), as `peer`'s mirror computes it (the replicas compute the same).
  defp keys_for(peer, sup, tag, spec_fun, want) do
    Enum.reduce_while(1..500, {want, []}, fn i, {left, acc} ->
      key = {tag, i}
      {:ok, {_, n}} = peer_call(peer, DS, :placement, [sup, spec_fun.(key)])

      {left, acc} =
        if Map.get(left, n, 0) > 0,
          do: {Map.update!(left, n, &(&1 - 1)), [{key, n} | acc]},
          else: {left, acc}

      if Enum.all?(left, fn {_, c} -> c == 0 end),
        do: {:halt, {left, Enum.reverse(acc)}},
        else: {:cont, {left, acc}}
    end)
    |> then(fn {left, acc} ->
      assert Enum.all?(left, fn {_, c} -> c == 0 end), "no keys for #{inspect(left)}"
      acc
    end)
  end

  # `P.records/1` on a peer, as {key => {id, kind, restart, node | nil, pid | nil}} (a key
  # recorded twice — two ids — fails: each child has one record for life).
  defp view(peer, sup) do
    recs = peer_call(peer, P, :records, [sup])
    by_key = Enum.group_by(recs, fn {_id, rec} -> elem(rec, 0) end)

    for {key, [{id, {_key, kind, restart, n, pid}}]} <- by_key, into: %{} do
      {key, {id, kind, restart, n, pid}}
    end
    |> tap(fn v ->
      assert map_size(v) == map_size(by_key),
             "a key with two records on #{peer.node}: #{inspect(Enum.filter(by_key, fn {_, l} -> length(l) > 1 end))}"
    end)
  end

  # Live BEAM copies per key on the given peers: %{key => [pid]}.
  defp beam_copies(peers) do
    peers
    |> Enum.flat_map(&peer_call(&1, P, :local_copies, []))
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
  end

  # What a C worker says its key is (nil when it does not answer).
  defp c_key(pid) do
    case GenServer.call(pid, :get_arg, 2_000) do
      {:part, key} -> key
      _ -> nil
    end
  catch
    :exit, _ -> nil
  end

  # Calls `fun` until it returns `{:ok, value}` (returned) or `timeout` ms pass; then returns
  # `{:timeout, last}` (the last `{:no, why}`'s `why`) instead of failing, so a test can report
  # every expectation that did not hold, not only the first.
  defp converge(fun, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_converge(fun, deadline)
  end

  defp do_converge(fun, deadline) do
    result =
      try do
        fun.()
      rescue
        e -> {:no, Exception.message(e)}
      catch
        :exit, reason -> {:no, {:exit, reason}}
      end

    case result do
      {:ok, _} = ok ->
        ok

      {:no, why} ->
        if System.monotonic_time(:millisecond) >= deadline do
          {:timeout, why}
        else
          Process.sleep(100)
          do_converge(fun, deadline)
        end
    end
  end

  # Each child of `keys` (`[{key, kind}]`) runs exactly once according to both peers' views, and
  # the nodes agree: per BEAM key exactly the listed pid lives (on any peer of `peers`), each
  # hordec runs exactly the C workers listed on it (its process count above `base`).
  defp exactly_once(ctx, viewers, peers, hordecs, base, keys) do
    [v | others] = Enum.map(viewers, &view(&1, ctx.sup))

    cond do
      Enum.any?(others, &(&1 != v)) ->
        {:no, {:views_differ, [v | others]}}

      Enum.sort(Map.keys(v)) != Enum.sort(Enum.map(keys, &elem(&1, 0))) ->
        {:no, {:keys, missing: Enum.map(keys, &elem(&1, 0)) -- Map.keys(v), view: v}}

      Enum.any?(v, fn {_, {_, _, _, _, pid}} -> pid == nil end) ->
        {:no, {:not_running, for({k, {_, _, _, nil, _}} <- v, do: k)}}

      true ->
        copies = beam_copies(peers)

        wrong_beam =
          for {k, {_, :beam, _, _, pid}} <- v,
              Map.get(copies, k, []) != [pid],
              do: {k, listed: pid, live: Map.get(copies, k, [])}

        unlisted = Map.keys(copies) -- Map.keys(v)

        wrong_c =
          for h <- hordecs,
              listed =
                Enum.count(v, fn {_, {_, kind, _, n, _}} -> kind == :c and n == h.node end),
              running = processes(h) - base[h.node],
              running != listed,
              do: {h.node, listed: listed, running: running}

        if wrong_beam == [] and unlisted == [] and wrong_c == [],
          do: {:ok, v},
          else: {:no, {:copies, beam: wrong_beam, unlisted_beam: unlisted, c: wrong_c}}
    end
  end

  # ------------------------------------------------------------------ 1. UniformDistribution

  test "UniformDistribution, split {h1, p1} | {h2, p2}: both sides run every child; after the " <>
         "heal the records decide, one copy each, named everywhere, none lost",
       ctx do
    %{sup: sup, reg: reg, log: log} = ctx
    [h1, h2] = start_hordecs(2)
    [p1, p2] = start_peers(2)
    a = %{hordecs: [h1], peers: [p1]}
    b = %{hordecs: [h2], peers: [p2]}

    for {p, hs} <- [{p1, [h1.node, h2.node]}, {p2, [h2.node, h1.node]}] do
      assert {:ok, _} =
               peer_call(p, RH, :start_registry, [[name: reg, keys: :unique, hordec: hs]])

      start_sup_on(p,
        name: sup,
        strategy: :one_for_one,
        members: [sup, {sup, p1.node}, {sup, p2.node}],
        hordec: hs
      )
    end

    everyone = Enum.sort(for n <- [h1.node, h2.node, p1.node, p2.node], do: {sup, n})
    for p <- [p1, p2], do: eventually(fn -> alive_members(p, sup) == everyone end, @converge)
    # Both registry replicas exist (the clients create them): the base process counts hold them.
    for h <- [h1, h2], do: eventually(fn -> GenServer.call({reg, h.node}, :members) != [] end)
    base = Map.new([h1, h2], &{&1.node, processes(&1)})

    # ---- children on every member: 3 named BEAM children per peer, 3 C workers per hordec
    beam = &P.beam_spec(&1, :permanent, reg, log)
    bkeys = keys_for(p1, sup, :b, beam, %{p1.node => 3, p2.node => 3})
    ckeys = keys_for(p1, sup, :c, &P.c_spec/1, %{h1.node => 3, h2.node => 3})

    started =
      for {k, n} <- bkeys ++ ckeys, into: %{} do
        spec = if elem(k, 0) == :b, do: beam.(k), else: P.c_spec(k)
        assert {:ok, pid} = peer_call(p1, DS, :start_child, [sup, spec])
        assert node(pid) == n
        {k, pid}
      end

    # C workers are named through the replica of their own node, as a C process names itself.
    for {k, _} <- ckeys, do: assert({:ok, _} = P.register_c(reg, k, started[k]))

    keys = for {k, _} <- bkeys ++ ckeys, do: {k, if(elem(k, 0) == :b, do: :beam, else: :c)}

    names_everywhere = fn expected ->
      for {k, _} <- expected,
          where <- [p1, p2, h1, h2],
          got = lookup(where, reg, k),
          got != [{expected[k], nil}],
          do: {k, where.node, got}
    end

    eventually(fn -> assert names_everywhere.(started) == [] end, @converge)

    {:ok, before} =
      converge(fn -> exactly_once(ctx, [p1, p2], [p1, p2], [h1, h2], base, keys) end, @converge)

    ids = Map.new(before, fn {k, {id, _, _, _, _}} -> {k, id} end)
    for {_, pid} <- started, do: Process.monitor(pid)

    # ---- the partition
    split(a, b)
    t_split = System.monotonic_time(:millisecond)
    problems = []

    # Each side restarts the other side's children on its own members (docs §5).
    side_ok = fn peer, side ->
      v = view(peer, sup)
      mine = nodes(side)

      elsewhere = for {k, {_, _, _, n, pid}} <- v, pid == nil or n not in mine, do: {k, n, pid}

      cond do
        Enum.sort(Map.keys(v)) != Enum.sort(Map.keys(ids)) ->
          {:no, {:records, missing: Map.keys(ids) -- Map.keys(v)}}

        elsewhere != [] ->
          {:no, {:not_on_this_side, elsewhere}}

        true ->
          {:ok, v}
      end
    end

    split_views =
      for {p, side, label} <- [{p1, a, :a}, {p2, b, :b}], into: %{} do
        {label, converge(fn -> side_ok.(p, side) end, @converge)}
      end

    IO.puts(
      "partition (UniformDistribution): sides settled after " <>
        "#{System.monotonic_time(:millisecond) - t_split} ms"
    )

    problems =
      problems ++
        for {label, {:timeout, why}} <- split_views,
            do: {:split, "side #{label} does not run every child", why}

    # Duplicates while split: copies of one child live on both sides.
    copies_a = beam_copies([p1])
    copies_b = beam_copies([p2])
    view_a = peer_call(p1, P, :records, [sup])
    view_b = peer_call(p2, P, :records, [sup])

    c_on = fn recs, h ->
      for {_, {k, :c, _, n, pid}} <- recs, n == h.node, is_pid(pid), c_key(pid) == k, do: {k, pid}
    end

    c_a = c_on.(view_a, h1)
    c_b = c_on.(view_b, h2)
    dup_beam = for {k, _} <- copies_a, Map.has_key?(copies_b, k), do: k
    dup_c = for {k, _} <- c_a, List.keymember?(c_b, k, 0), do: k

    problems =
      if dup_beam ++ dup_c == [],
        do: problems ++ [{:split, "no child runs on both sides", {copies_a, copies_b, c_a, c_b}}],
        else: problems

    # Every copy seen now is watched (its end reason is collected after the heal). Takeover
    # copies of C workers name themselves through their own node's replica (the other side's
    # copy holds the name in this side's view: the answer is reported, not asserted).
    for {_, pids} <- Map.merge(copies_a, copies_b, fn _, x, y -> x ++ y end),
        pid <- pids,
        do: Process.monitor(pid)

    c_names =
      for {k, pid} <- c_a ++ c_b, pid != started[k] do
        Process.monitor(pid)
        {k, node(pid), P.register_c(reg, k, pid)}
      end

    IO.puts(
      "during the split: duplicated BEAM #{inspect(dup_beam)}, C #{inspect(dup_c)}; " <>
        "C takeover copies naming themselves: #{inspect(c_names)}"
    )

    # The partition held: the BEAM peers did not reconnect meanwhile.
    assert p2.node not in peer_call(p1, Node, :list, [[:connected]])

    # ---- the heal
    heal(a, b)
    t_heal = System.monotonic_time(:millisecond)

    final =
      converge(fn -> exactly_once(ctx, [p1, p2], [p1, p2], [h1, h2], base, keys) end, @converge)

    IO.puts(
      "heal (UniformDistribution): #{elem(final, 0)} after " <>
        "#{System.monotonic_time(:millisecond) - t_heal} ms"
    )

    # Whatever the outcome, every expectation is checked against the records as p1 reads them.
    last = view(p1, sup)
    survivors = for {k, {_, _, _, _, pid}} <- last, is_pid(pid), into: %{}, do: {k, pid}
    lost = Map.keys(ids) -- Map.keys(last)
    new_ids = for {k, {id, _, _, _, _}} <- last, ids[k] != id, do: k

    named =
      converge(
        fn ->
          case names_everywhere.(survivors) do
            [] -> {:ok, :named}
            wrong -> {:no, wrong}
          end
        end,
        @converge
      )

    # Losers: every copy watched that is not a survivor ended (stopped by its member, or the
    # registry's name_conflict exit).
    downs = collect_downs()

    alive_losers =
      for {k, pid} <- watched(copies_a, copies_b, c_a, c_b, started),
          pid != survivors[k],
          not Map.has_key?(downs, pid),
          do: {k, pid}

    IO.puts(
      "after the heal: #{map_size(survivors)} of #{map_size(ids)} children run; ends of the " <>
        "other copies: #{inspect(Enum.frequencies(Enum.map(downs, fn {_, r} -> reason_kind(r) end)))}"
    )

    problems =
      problems ++
        case final do
          {:ok, _} -> []
          {:timeout, why} -> [{:heal, "not exactly one copy of each child", why}]
        end ++
        if(lost == [], do: [], else: [{:heal, "children lost (their records are gone)", lost}]) ++
        if(new_ids == [], do: [], else: [{:heal, "children with a new id", new_ids}]) ++
        case named do
          {:ok, _} -> []
          {:timeout, wrong} -> [{:heal, "names do not resolve to the surviving copies", wrong}]
        end ++
        if(alive_losers == [], do: [], else: [{:heal, "losers still running", alive_losers}])

    if problems != [] do
      flunk(
        "UniformDistribution partition:\n" <>
          Enum.map_join(problems, "\n", fn {phase, what, detail} ->
            "  [#{phase}] #{what}: #{inspect(detail, limit: 60, printable_limit: 200)}"
          end)
      )
    end
  end

  defp lookup(%HordeC.TestCluster.Peer{} = p, reg, k),
    do: peer_call(p, Registry, :lookup, [reg, P.name(k)])

  defp lookup(%HordeC.TestCluster.Hordec{} = h, reg, k),
    do: GenServer.call({reg, h.node}, {:lookup, P.name(k)})

  defp watched(copies_a, copies_b, c_a, c_b, started) do
    for(
      {k, pids} <- Map.merge(copies_a, copies_b, fn _, x, y -> x ++ y end),
      pid <- pids,
      do: {k, pid}
    ) ++
      c_a ++ c_b ++ Enum.to_list(started)
  end

  defp collect_downs(acc \\ %{}) do
    receive do
      {:DOWN, _ref, :process, pid, reason} -> collect_downs(Map.put(acc, pid, reason))
    after
      0 -> acc
    end
  end

  defp reason_kind({:name_conflict, _, _, _}), do: :name_conflict
  defp reason_kind(r), do: r
end
