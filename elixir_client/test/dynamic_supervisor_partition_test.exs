defmodule HordeC.DynamicSupervisorPartitionTest do
  @moduledoc """
  `HordeC.DynamicSupervisor` under partitions and a graceful hordec shutdown, on real processes
  (docs/supervisor.md §3, §5):

    * `HordeC.UniformDistribution`, split `{h1, p1} | {h2, p2}`: both sides take over the other
      side's children (duplicates while split) and lose no record; after the heal the records
      decide, exactly one copy of each child runs, its name (`HordeC.Registry`) resolves to it
      everywhere, and no child is lost;
    * `HordeC.UniformQuorumDistribution`, split `{h1, p1} | {h2, h3, p2}`: the minority stops its
      children and refuses new ones, the majority runs every permanent child; after the heal
      each runs once;
    * SIGTERM to a hordec running C workers: they are handed over to the other hordec with their
      ids (temporary ones too, which the dead-member path would drop), promptly, and it exits 0.

  A partition cuts every link between the sides: hordec ↔ hordec and hordec ↔ BEAM with the
  control process's `block_peers` on the hordec nodes (both ways), BEAM ↔ BEAM with
  `:erlang.disconnect_node/1`. The peers are started with `-connect_all false`: with OTP 25's
  `prevent_overlapping_partitions`, the runner's `global` would otherwise disconnect both peers
  when one drops its link to the other (and a peer halts without its link to the runner). The
  runner stays connected to every node, as an observer: it is neither a member nor a client of
  the supervisors that are split.

  Nothing is taken on the supervisor's word: BEAM children are counted on their nodes
  (`local_copies/0`, which a partition cannot hide from the runner); C workers are counted by
  each hordec's process count and answer their argument, which carries their key.
  """
  use HordeC.InteropCase, async: false

  @moduletag timeout: 150_000

  alias HordeC.DynamicSupervisor, as: DS
  alias HordeC.DynamicSupervisor.Member
  alias HordeC.Registry
  alias HordeC.TestCluster.{Hordec, Peer}
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

  # `apply(m, f, a)` on a peer, or here (`:here`).
  defp on(:here, m, f, a), do: apply(m, f, a)
  defp on(%Peer{} = p, m, f, a), do: peer_call(p, m, f, a)

  defp start_sup_on(peer, opts), do: assert({:ok, _} = peer_call(peer, H, :start_sup, [opts]))

  defp alive_members(where, sup) do
    for(%Member{status: :alive, name: m} <- on(where, DS, :members_info, [sup]), do: m)
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
      for p <- x.peers, do: peer_call(p, P, :disconnect, [Enum.map(y.peers, & &1.node)])
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
        for h <- a.hordecs, g <- b.hordecs, do: assert(g.node in peers(h) and h.node in peers(g))
      end,
      @converge
    )
  end

  # Whether any node of one side is still connected to a node of the other.
  defp linked?(a, b) do
    hordec_links =
      for {x, y} <- [{a, b}, {b, a}], h <- x.hordecs, n <- nodes(y), n in peers(h), do: {h, n}

    beam_links =
      for p <- a.peers,
          q <- b.peers,
          q.node in peer_call(p, Node, :list, [[:connected]]),
          do: {p, q}

    hordec_links ++ beam_links != []
  end

  # ------------------------------------------------------------------ children

  # Keys `{tag, i}` whose child (built by `spec_fun`) placement puts on each node of `want`
  # (`%{node => count}`), as `where`'s mirror computes it (the replicas compute the same).
  # Returns `[{key, node}]`.
  defp keys_for(where, sup, tag, spec_fun, want) do
    {left, keys} =
      Enum.reduce_while(1..1_000, {want, []}, fn i, {left, acc} ->
        key = {tag, i}
        {:ok, {_, n}} = on(where, DS, :placement, [sup, spec_fun.(key)])

        {left, acc} =
          if Map.get(left, n, 0) > 0,
            do: {Map.update!(left, n, &(&1 - 1)), [{key, n} | acc]},
            else: {left, acc}

        if Enum.all?(left, fn {_, c} -> c == 0 end),
          do: {:halt, {left, acc}},
          else: {:cont, {left, acc}}
      end)

    assert Enum.all?(left, fn {_, c} -> c == 0 end), "no keys placed on #{inspect(left)}"
    Enum.reverse(keys)
  end

  # The records as `where`'s mirror holds them, by key: %{key => {id, kind, restart, node | nil,
  # pid | nil}}. A key recorded twice (two ids) fails: a child has one record for life.
  defp view(where, sup) do
    by_key = on(where, P, :records, [sup]) |> Enum.group_by(fn {_id, rec} -> elem(rec, 0) end)

    twice = for {k, [_, _ | _] = l} <- by_key, do: {k, l}
    assert twice == [], "keys with several records: #{inspect(twice)}"

    for {key, [{id, {_key, kind, restart, n, pid}}]} <- by_key,
        into: %{},
        do: {key, {id, kind, restart, n, pid}}
  end

  defp pid_of({_, _, _, _, pid}), do: pid
  defp node_of_rec({_, _, _, n, _}), do: n

  # Live BEAM copies per key on the given peers: %{key => [pid]}.
  defp beam_copies(peers) do
    peers
    |> Enum.flat_map(&peer_call(&1, P, :local_copies, []))
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
  end

  # Live C copies per key among the C pids of the given records (each asked for its key).
  defp c_copies(records) do
    for {k, {_, :c, _, _, pid}} <- records, is_pid(pid), c_key(pid) == k, do: {k, pid}
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

  # Each child of `keys` (`[key]`) runs exactly once: the viewers' mirrors agree and list each key
  # once, running; per BEAM key exactly the listed pid lives on `peers`; each of `hordecs` runs
  # exactly the C workers listed on it (its process count above `base`). `{:ok, view}` or
  # `{:no, why}`.
  defp exactly_once(sup, viewers, peers, hordecs, base, keys) do
    [v | others] = Enum.map(viewers, &view(&1, sup))

    cond do
      Enum.any?(others, &(&1 != v)) ->
        {:no, {:views_differ, [v | others]}}

      Enum.sort(Map.keys(v)) != Enum.sort(keys) ->
        {:no, {:keys, missing: keys -- Map.keys(v), extra: Map.keys(v) -- keys}}

      Enum.any?(v, fn {_, rec} -> pid_of(rec) == nil end) ->
        {:no, {:not_running, for({k, rec} <- v, pid_of(rec) == nil, do: k)}}

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

  # Calls `fun` until it returns `{:ok, value}` (returned) or `timeout` ms pass; then returns
  # `{:timeout, why}` (the last `{:no, why}`) instead of failing, so a test can go on and report
  # every expectation that did not hold, not only the first.
  defp converge(fun, timeout \\ @converge) do
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

  # converge/2, failing with the last reason at the deadline.
  defp settle!(what, fun, timeout \\ @converge) do
    case converge(fun, timeout) do
      {:ok, value} -> value
      {:timeout, why} -> flunk("#{what}: #{inspect(why, limit: 80, printable_limit: 400)}")
    end
  end

  # Everything is checked strictly: while the partition lasts, and after the heal (docs/supervisor.md §5: the
  # records decide which split copy survives; under UniformQuorumDistribution the minority never acts on the
  # deaths it sees as it loses quorum, and a replica that regains it waits for the majority's records).
  defp report!(title, problems) do
    if problems != [] do
      flunk(
        "#{title}:\n" <>
          Enum.map_join(problems, "\n", fn {phase, what, detail} ->
            "  [#{phase}] #{what}: #{inspect(detail, limit: 60, printable_limit: 300)}"
          end)
      )
    end
  end

  defp collect_downs(acc \\ %{}) do
    receive do
      {:DOWN, _ref, :process, pid, reason} -> collect_downs(Map.put(acc, pid, reason))
    after
      0 -> acc
    end
  end

  # The starts BEAM children reported since the last call, per key (their ends are dropped).
  defp starts(acc \\ %{}) do
    receive do
      {:part_started, k, _pid, _node} -> starts(Map.update(acc, k, 1, &(&1 + 1)))
      {:part_ended, _, _, _, _} -> starts(acc)
    after
      0 -> acc
    end
  end

  defp reason_kind({:name_conflict, _, _, _}), do: :name_conflict
  defp reason_kind(r), do: r

  # ------------------------------------------------------------------ naming C workers

  # Every C worker copy is named once, as soon as it shows in a viewer's mirror, through the
  # replica of its own node (what a C worker naming itself in its init would do; the built-in
  # echo does not). BEAM children name themselves (via tuples).
  defp start_namer(reg, sup, viewers) do
    spawn_link(fn -> namer(reg, sup, viewers, %{}) end)
  end

  # %{pid => {key, register result}} of every copy named (the last attempt: a refused one is retried).
  defp stop_namer(namer) do
    send(namer, {:stop, self()})
    assert_receive {:named, ^namer, named}, 5_000
    named
  end

  defp namer(reg, sup, viewers, named) do
    receive do
      {:stop, from} -> send(from, {:named, self(), named})
    after
      30 ->
        named =
          for p <- viewers,
              {_id, {k, :c, _, _, pid}} <-
                safe(fn -> peer_call(p, P, :records, [sup], 2_000) end),
              is_pid(pid),
              reduce: named do
            named ->
              # A copy whose name was taken tries again, as a C worker naming itself would:
              # the copy holding it may be the one the heal stops.
              case named do
                %{^pid => {_, {:ok, _}}} -> named
                _ -> Map.put(named, pid, {k, safe(fn -> P.register_c(reg, k, pid) end)})
              end
          end

        namer(reg, sup, viewers, named)
    end
  end

  defp safe(fun) do
    fun.()
  catch
    kind, reason -> {kind, reason}
  end

  defp lookup(%Peer{} = p, reg, k), do: peer_call(p, Registry, :lookup, [reg, P.name(k)])
  defp lookup(%Hordec{} = h, reg, k), do: GenServer.call({reg, h.node}, {:lookup, P.name(k)})

  # ------------------------------------------------------------------ 1. UniformDistribution

  test "UniformDistribution, split {h1, p1} | {h2, p2}: both sides take over the other's " <>
         "children; after the heal the records decide, one copy each, named everywhere, none lost",
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
    namer = start_namer(reg, sup, [p1, p2])

    # ---- children on every member: 3 named BEAM children per peer, 3 C workers per hordec
    beam = &P.beam_spec(&1, :permanent, reg, log)
    placed = keys_for(p1, sup, :b, beam, %{p1.node => 3, p2.node => 3})
    placed = placed ++ keys_for(p1, sup, :c, &P.c_spec/1, %{h1.node => 3, h2.node => 3})
    keys = Enum.map(placed, &elem(&1, 0))

    started =
      for {k, n} <- placed, into: %{} do
        spec = if elem(k, 0) == :b, do: beam.(k), else: P.c_spec(k)
        assert {:ok, pid} = peer_call(p1, DS, :start_child, [sup, spec])
        assert node(pid) == n
        Process.monitor(pid)
        {k, pid}
      end

    # Names that do not resolve to `expected` (%{key => pid}) on some node.
    misnamed = fn expected ->
      for {k, pid} <- expected,
          where <- [p1, p2, h1, h2],
          got = lookup(where, reg, k),
          got != [{pid, nil}],
          do: {k, where.node, got}
    end

    settle!("names before the split", fn ->
      if misnamed.(started) == [], do: {:ok, true}, else: {:no, misnamed.(started)}
    end)

    before =
      settle!("children before the split", fn ->
        exactly_once(sup, [p1, p2], [p1, p2], [h1, h2], base, keys)
      end)

    ids = Map.new(before, fn {k, rec} -> {k, elem(rec, 0)} end)

    # ---- the partition
    split(a, b)
    t_split = System.monotonic_time(:millisecond)

    # Each side restarts the other side's children on its own members (docs §5), and no record
    # is lost meanwhile. C workers are named after they start: every one can be taken over. A
    # named BEAM child can be taken over only if its name is free on that side; it is not (the
    # other side's copy holds it in this side's registry), so whether it runs on both sides is
    # reported, not required: its record must survive either way.
    on_this_side = fn peer, side ->
      v = view(peer, sup)

      c_elsewhere =
        for {k, {_, :c, _, n, pid}} <- v, pid == nil or n not in nodes(side), do: {k, n}

      cond do
        Enum.sort(Map.keys(v)) != Enum.sort(keys) ->
          {:no, {:records_lost, keys -- Map.keys(v)}}

        c_elsewhere != [] ->
          {:no, {:c_workers_not_on_this_side, c_elsewhere}}

        true ->
          {:ok, v}
      end
    end

    settled =
      [{p1, a, "{h1, p1}"}, {p2, b, "{h2, p2}"}]
      |> Enum.map(fn {p, side, label} ->
        Task.async(fn -> {label, converge(fn -> on_this_side.(p, side) end)} end)
      end)
      |> Task.await_many(@converge + 5_000)

    IO.puts(
      "\npartition (UniformDistribution): sides settled (or gave up) after " <>
        "#{System.monotonic_time(:millisecond) - t_split} ms"
    )

    problems =
      for {label, {:timeout, why}} <- settled,
          do: {:split, "side #{label} lost records or does not run every C worker", why}

    # Duplicates while split: copies of one child live on both sides.
    view_a = view(p1, sup)
    view_b = view(p2, sup)
    beam_a = beam_copies([p1])
    beam_b = beam_copies([p2])
    c_a = c_copies(view_a)
    c_b = c_copies(view_b)
    dup_beam = for {k, _} <- beam_a, Map.has_key?(beam_b, k), do: k
    dup_c = for {k, _} <- c_a, List.keymember?(c_b, k, 0), do: k

    problems =
      problems ++
        if dup_beam ++ dup_c == [],
          do: [{:split, "no child runs on both sides", {beam_a, beam_b, c_a, c_b}}],
          else: []

    # Every copy seen now is watched: how each one ends is checked after the heal.
    split_copies =
      Enum.uniq(
        for({k, pids} <- Map.to_list(beam_a) ++ Map.to_list(beam_b), pid <- pids, do: {k, pid}) ++
          c_a ++ c_b ++ Map.to_list(started)
      )

    for {_, pid} <- split_copies, do: Process.monitor(pid)

    IO.puts(
      "during the split: #{length(dup_beam)} BEAM and #{length(dup_c)} C children run on both " <>
        "sides; records on {h1, p1}: #{map_size(view_a)}, on {h2, p2}: #{map_size(view_b)} of " <>
        "#{length(keys)}"
    )

    # The partition held: the BEAM peers did not reconnect meanwhile.
    assert p2.node not in peer_call(p1, Node, :list, [[:connected]])

    # ---- the heal
    starts()
    heal(a, b)
    t_heal = System.monotonic_time(:millisecond)

    final = converge(fn -> exactly_once(sup, [p1, p2], [p1, p2], [h1, h2], base, keys) end)

    IO.puts(
      "heal (UniformDistribution): #{elem(final, 0)} after " <>
        "#{System.monotonic_time(:millisecond) - t_heal} ms"
    )

    # Whatever the outcome, every expectation is checked against the records as p1 reads them.
    last = view(p1, sup)
    survivors = for {k, rec} <- last, is_pid(pid_of(rec)), into: %{}, do: {k, pid_of(rec)}
    lost = keys -- Map.keys(last)
    new_ids = for {k, rec} <- last, ids[k] != elem(rec, 0), do: k

    # The record decides between the copies that ran during the split: the survivor is one of them.
    third =
      for {k, pid} <- survivors, not Enum.member?(split_copies, {k, pid}), do: {k, node(pid)}

    named =
      converge(fn ->
        case misnamed.(survivors) do
          [] -> {:ok, :named}
          wrong -> {:no, wrong}
        end
      end)

    # Losers: every copy watched that is not a survivor ended, stopped by its member (:shutdown)
    # or by the registry's name_conflict exit.
    downs = collect_downs()
    losers = for {k, pid} <- split_copies, pid != survivors[k], do: {k, pid}
    alive_losers = for {k, pid} <- losers, not Map.has_key?(downs, pid), do: {k, pid}

    odd_ends =
      for {k, pid} <- losers,
          r = Map.get(downs, pid),
          r != nil and reason_kind(r) not in [:shutdown, :name_conflict, :noproc],
          do: {k, pid, r}

    named_c = stop_namer(namer)
    started_again = starts()

    IO.puts(
      "after the heal: #{map_size(survivors)} of #{length(keys)} children run, " <>
        "#{length(third)} of them a copy started after the heal; ends of the other copies: " <>
        "#{inspect(Enum.frequencies(for {_, pid} <- losers, do: reason_kind(Map.get(downs, pid))))}; " <>
        "C copies naming themselves: " <>
        inspect(Enum.frequencies(for {_, {_, r}} <- named_c, do: elem(r, 0)))
    )

    # Strict: after the heal exactly one of the split copies of each child runs, named.
    report!(
      "UniformDistribution partition",
      problems ++
        case final do
          {:ok, _} -> []
          {:timeout, why} -> [{:heal, "not exactly one copy of each child", why}]
        end ++
        if(lost == [], do: [], else: [{:heal, "children lost (their records are gone)", lost}]) ++
        if(new_ids == [], do: [], else: [{:heal, "children with a new id", new_ids}]) ++
        if(third == [],
          do: [],
          else: [{:heal, "neither split copy kept: restarted after the heal", third}]
        ) ++
        case named do
          {:ok, _} -> []
          {:timeout, wrong} -> [{:heal, "names do not resolve to the surviving copies", wrong}]
        end ++
        if(alive_losers == [], do: [], else: [{:heal, "losers still running", alive_losers}]) ++
        if(odd_ends == [], do: [], else: [{:heal, "losers ended oddly", odd_ends}]) ++
        if(started_again == %{},
          do: [],
          else: [{:heal, "BEAM children started after the heal (starts per key)", started_again}]
        )
    )
  end

  # ------------------------------------------------------------------ 2. UniformQuorumDistribution

  test "UniformQuorumDistribution, split {h1, p1} | {h2, h3, p2}: the minority stops its " <>
         "children and refuses new ones, the majority runs every permanent child; after the " <>
         "heal each runs once",
       ctx do
    %{sup: sup, log: log} = ctx
    [h1, h2, h3] = start_hordecs(3)
    [p1, p2] = start_peers(2)
    minority = %{hordecs: [h1], peers: [p1]}
    majority = %{hordecs: [h2, h3], peers: [p2]}

    opts = [
      name: sup,
      strategy: :one_for_one,
      members: [sup, {sup, p1.node}, {sup, p2.node}],
      distribution_strategy: HordeC.UniformQuorumDistribution
    ]

    start_sup_on(p1, opts ++ [hordec: [h1.node, h2.node, h3.node]])
    start_sup_on(p2, opts ++ [hordec: [h2.node, h3.node, h1.node]])
    everyone = Enum.sort(for n <- [h1.node, h2.node, h3.node, p1.node, p2.node], do: {sup, n})
    for p <- [p1, p2], do: eventually(fn -> alive_members(p, sup) == everyone end, @converge)
    assert peer_call(p1, DS, :wait_for_quorum, [sup, @converge]) == :ok
    base = Map.new([h1, h2, h3], &{&1.node, processes(&1)})

    # Permanent children on every member, and one temporary child on each of p1, p2, h1, h2.
    beam = &P.beam_spec(&1, :permanent, nil, log)
    temp_beam = &P.beam_spec(&1, :temporary, nil, log)
    temp_c = &P.c_spec(&1, :temporary)

    placed =
      for {tag, fun, want} <- [
            {:b, beam, %{p1.node => 3, p2.node => 3}},
            {:c, &P.c_spec/1, %{h1.node => 2, h2.node => 2, h3.node => 2}},
            {:tb, temp_beam, %{p1.node => 1, p2.node => 1}},
            {:tc, temp_c, %{h1.node => 1, h2.node => 1}}
          ],
          {k, n} <- keys_for(p2, sup, tag, fun, want) do
        spec = %{b: beam, c: &P.c_spec/1, tb: temp_beam, tc: temp_c}[tag].(k)
        assert {:ok, pid} = peer_call(p2, DS, :start_child, [sup, spec])
        assert node(pid) == n
        {k, n}
      end

    keys = Enum.map(placed, &elem(&1, 0))
    all = [p1, p2]
    hs = [h1, h2, h3]

    before =
      settle!("children before the split", fn -> exactly_once(sup, all, all, hs, base, keys) end)

    ids = Map.new(before, fn {k, rec} -> {k, elem(rec, 0)} end)

    # ---- the partition
    split(minority, majority)
    t_split = System.monotonic_time(:millisecond)

    settle!("the minority sees it has no quorum", fn ->
      info = peer_call(p1, DS, :members_info, [sup])
      if HordeC.UniformQuorumDistribution.has_quorum?(info), do: {:no, info}, else: {:ok, true}
    end)

    # The minority stops its children (their records stay) and refuses new ones.
    stopped =
      converge(fn ->
        copies = beam_copies([p1])
        running = processes(h1) - base[h1.node]
        if copies == %{} and running == 0, do: {:ok, true}, else: {:no, {copies, c: running}}
      end)

    t_stopped = System.monotonic_time(:millisecond) - t_split

    refused =
      for spec <- [beam.({:refused, 1}), P.c_spec({:refused, 2})],
          r = peer_call(p1, DS, :start_child, [sup, spec]),
          r != {:error, :quorum_not_met},
          do: r

    # The majority runs every permanent child; the minority's temporary children are gone (their
    # member is dead to the majority: not restarted), the majority's keep running.
    gone = for {k, n} <- placed, elem(k, 0) in [:tb, :tc], n in nodes(minority), do: k
    expected = keys -- gone

    on_majority = converge(fn -> exactly_once(sup, [p2], [p2], [h2, h3], base, expected) end)

    t_majority = System.monotonic_time(:millisecond) - t_split

    # ... and starts new ones.
    new =
      for spec <- [beam.({:new, 1}), P.c_spec({:new, 2})],
          do: peer_call(p2, DS, :start_child, [sup, spec])

    expected = expected ++ [{:new, 1}, {:new, 2}]
    split_view = view(p2, sup)

    IO.puts(
      "\npartition (UniformQuorumDistribution): minority stopped its children after " <>
        "#{t_stopped} ms, majority ran every permanent child after #{t_majority} ms"
    )

    assert p2.node not in peer_call(p1, Node, :list, [[:connected]])

    problems =
      case stopped do
        {:ok, _} -> []
        {:timeout, why} -> [{:split, "the minority still runs children", why}]
      end ++
        if(refused == [], do: [], else: [{:split, "the minority started children", refused}]) ++
        case on_majority do
          {:ok, _} -> []
          {:timeout, why} -> [{:split, "the majority does not run every permanent child", why}]
        end ++
        if(Enum.all?(new, &match?({:ok, _}, &1)),
          do: [],
          else: [{:split, "the majority refused new children", new}]
        )

    # ---- the heal: every child runs exactly once, with the id it had; the majority's children
    # are not touched; the former minority works again
    starts()
    heal(minority, majority)
    t_heal = System.monotonic_time(:millisecond)
    final = converge(fn -> exactly_once(sup, all, all, hs, base, expected) end)

    IO.puts(
      "heal (UniformQuorumDistribution): #{elem(final, 0)} after " <>
        "#{System.monotonic_time(:millisecond) - t_heal} ms"
    )

    last = view(p1, sup)
    new_ids = for {k, id} <- ids, k in expected, last[k] && elem(last[k], 0) != id, do: k

    restarted =
      for {k, rec} <- split_view,
          last[k] && pid_of(last[k]) != pid_of(rec),
          do: {k, node_of_rec(rec), node_of_rec(last[k])}

    quorum = safe(fn -> peer_call(p1, DS, :wait_for_quorum, [sup, @converge]) end)

    after_heal =
      if quorum == :ok,
        do: peer_call(p1, DS, :start_child, [sup, beam.({:after_heal, 1})]),
        else: :no_quorum

    after_heal_runs =
      case after_heal do
        {:ok, pid} ->
          converge(fn ->
            rec = view(p2, sup)[{:after_heal, 1}]
            copies = Map.get(beam_copies(all), {:after_heal, 1}, [])

            if rec && pid_of(rec) == pid and copies == [pid],
              do: {:ok, pid},
              else: {:no, {rec, copies}}
          end)

        other ->
          {:timeout, other}
      end

    started_again = Map.delete(starts(), {:after_heal, 1})

    report!(
      "UniformQuorumDistribution partition",
      problems ++
        case final do
          {:ok, _} -> []
          {:timeout, why} -> [{:heal, "not every child runs exactly once", why}]
        end ++
        if(new_ids == [], do: [], else: [{:heal, "children with a new id", new_ids}]) ++
        if(restarted == [],
          do: [],
          else: [
            {:heal, "the heal restarted children of the majority {key, from, to}", restarted}
          ]
        ) ++
        if(started_again == %{},
          do: [],
          else: [{:heal, "BEAM children started after the heal (starts per key)", started_again}]
        ) ++
        if(quorum == :ok, do: [], else: [{:heal, "the former minority has no quorum", quorum}]) ++
        case after_heal_runs do
          {:ok, _} -> []
          {:timeout, why} -> [{:heal, "a child started on the former minority does not run", why}]
        end
    )
  end

  # ------------------------------------------------------------------ 3. SIGTERM to hordec

  test "SIGTERM to a hordec running C workers: they are handed over to the other hordec with " <>
         "their ids (temporary ones too), promptly, and it exits 0",
       ctx do
    %{sup: sup} = ctx
    [h1, h2] = start_hordecs(2)
    # This runner is a client only (members: the two replicas), attached to h2, the survivor.
    start_supervised!(
      {DS, name: sup, strategy: :one_for_one, members: [sup], hordec: [h2.node, h1.node]},
      id: sup
    )

    eventually(fn -> alive_members(:here, sup) == Enum.sort([{sup, h1.node}, {sup, h2.node}]) end)
    base = processes(h2)

    # C workers of every restart type on both nodes: 4 of each on h1, 2 on h2.
    placed =
      for restart <- [:permanent, :transient, :temporary],
          {k, n} <-
            keys_for(:here, sup, restart, &P.c_spec(&1, restart), %{h1.node => 4, h2.node => 2}) do
        assert {:ok, pid} = DS.start_child(sup, P.c_spec(k, restart))
        assert node(pid) == n
        {k, pid}
      end

    before = view(:here, sup)
    assert map_size(before) == length(placed)
    counts = DS.count_children(sup)
    moving = for {k, rec} <- before, node_of_rec(rec) == h1.node, do: k

    # Back: every record kept its id; those of h1 run on h2 with a new pid; the others untouched.
    back? = fn ->
      v = view(:here, sup)

      Map.keys(v) == Map.keys(before) and
        Enum.all?(before, fn {k, {id, _, _, n, pid}} ->
          {id2, _, _, n2, pid2} = v[k]

          id2 == id and is_pid(pid2) and
            if(n == h1.node, do: n2 == h2.node and pid2 != pid, else: pid2 == pid)
        end)
    end

    t0 = System.monotonic_time(:millisecond)
    signal(h1, "TERM")
    {t_back, t_exit, status} = watch_shutdown(h1, back?, t0, nil, nil, nil)

    IO.puts(
      "\nSIGTERM to #{h1.node}: its #{length(moving)} C workers ran on #{h2.node} after " <>
        "#{inspect(t_back)} ms; hordec exited with status #{inspect(status)} after " <>
        "#{inspect(t_exit)} ms (the dead-member path starts no earlier than the exit)"
    )

    assert status == 0, "hordec exited with #{inspect(status)}:\n#{log(h1)}"
    assert t_back != nil, "h1's workers did not come back: #{inspect(view(:here, sup))}"
    # A handoff, not the dead-member path: its temporary workers came back too (a dead member's
    # are not restarted), within hordec's handover bound (3 s).
    assert Enum.any?(moving, &(elem(&1, 0) == :temporary))
    assert t_back < 3_000

    # Nothing lost, nothing twice: the same count, each worker answers its own key, and h2 runs
    # exactly the workers listed.
    assert length(DS.which_children(sup)) == length(placed)
    assert DS.count_children(sup) == counts
    after_ = view(:here, sup)
    assert Enum.all?(after_, fn {k, rec} -> c_key(pid_of(rec)) == k end)
    assert processes(h2) - base == length(placed)

    assert after_ |> Enum.map(fn {_, rec} -> pid_of(rec) end) |> Enum.uniq() |> length() ==
             length(placed)
  end

  # Polls every 5 ms until both the workers are back (`back?`) and hordec exited; returns
  # `{t_back, t_exit, status}` in ms since `t0` (nil for what did not happen within 15 s).
  defp watch_shutdown(h, back?, t0, t_back, t_exit, status) do
    now = System.monotonic_time(:millisecond) - t0

    {t_exit, status} =
      if t_exit do
        {t_exit, status}
      else
        port = h.port

        receive do
          {^port, {:exit_status, s}} -> {now, s}
        after
          0 -> {nil, nil}
        end
      end

    t_back = t_back || if(back?.(), do: now)

    cond do
      t_back && t_exit ->
        {t_back, t_exit, status}

      now > 15_000 ->
        {t_back, t_exit, status}

      true ->
        Process.sleep(5)
        watch_shutdown(h, back?, t0, t_back, t_exit, status)
    end
  end
end
