defmodule HordeC.DynamicSupervisorTest.ModuleSup do
  # A module-based supervisor, as in Horde's tests: use + start_link/3 + init/1.
  use HordeC.DynamicSupervisor, restart: :transient

  def start_link({name, hordecs}),
    do: HordeC.DynamicSupervisor.start_link(__MODULE__, {name, hordecs}, name: name)

  @impl true
  def init({_name, hordecs}) do
    HordeC.DynamicSupervisor.init(strategy: :one_for_one, hordec: hordecs, max_restarts: 7)
  end
end

defmodule HordeC.DynamicSupervisorTest do
  @moduledoc """
  `HordeC.DynamicSupervisor` on a real cluster: two hordec nodes (replicas, running C workers)
  and three BEAM members (this runner and two peers) running BEAM children. Ports the behaviours
  of Horde's `dynamic_supervisor_test.exs` (../shared/reference/horde-0.10-semantics.md §6) and
  the semantics docs/supervisor.md adds: restart types when a member dies, per-member intensity,
  graceful handoff, active redistribution, C workers.
  """
  use HordeC.InteropCase, async: false

  alias HordeC.{Cluster, DynamicSupervisor, HashRing}
  alias HordeC.DynamicSupervisor.Member
  alias HordeC.Test.SupervisorHelpers, as: H
  alias HordeC.Test.{SupIgnore, SupTask, SupWorker}

  @converge 5_000

  setup_all do
    [h1, h2] = start_hordecs(2)
    p1 = start_peer()
    p2 = start_peer()
    %{h1: h1.node, h2: h2.node, p1: p1, p2: p2}
  end

  setup ctx do
    sup = :"sup_#{System.unique_integer([:positive])}"
    on_exit(fn -> for p <- [ctx.p1, ctx.p2], do: stop_on(p, sup) end)
    %{sup: sup}
  end

  # ------------------------------------------------------------------ helpers

  defp opts(ctx, extra), do: [name: ctx.sup, strategy: :one_for_one] ++ extra

  # The member on this runner, under the test's supervisor.
  defp start_here(ctx, extra \\ [], hordecs \\ nil) do
    hs = hordecs || [ctx.h1, ctx.h2]
    start_supervised!({DynamicSupervisor, opts(ctx, extra) ++ [hordec: hs]}, id: ctx.sup)
  end

  defp start_on(ctx, peer, extra, hs) do
    assert {:ok, _} = peer_call(peer, H, :start_sup, [opts(ctx, extra) ++ [hordec: hs]])
  end

  # The runner and both peers (p1 attached to h1, p2 to h2), until each sees all three alive.
  defp start_all(ctx, extra \\ []) do
    start_here(ctx, extra)
    start_on(ctx, ctx.p1, extra, [ctx.h1, ctx.h2])
    start_on(ctx, ctx.p2, extra, [ctx.h2, ctx.h1])
    wait_beam_members(ctx, [node(), ctx.p1.node, ctx.p2.node])
  end

  defp wait_beam_members(ctx, nodes, on \\ nil) do
    expected = Enum.sort(for n <- nodes, do: {ctx.sup, n})

    for where <- on || [:here | Enum.filter([ctx.p1, ctx.p2], &(&1.node in nodes))] do
      eventually(fn -> assert {where, alive_beam(ctx, where)} == {where, expected} end, @converge)
    end

    :ok
  end

  defp alive_beam(ctx, :here), do: alive_beam_of(DynamicSupervisor.members_info(ctx.sup))

  defp alive_beam(ctx, peer),
    do: alive_beam_of(peer_call(peer, DynamicSupervisor, :members_info, [ctx.sup]))

  defp alive_beam_of(members),
    do: for(%Member{kind: :beam, status: :alive, name: n} <- members, do: n) |> Enum.sort()

  defp stop_on(peer, sup) do
    peer_call(peer, H, :stop_sup, [sup], 60_000)
  catch
    _, _ -> :ok
  end

  defp worker(key, extra \\ %{}), do: {SupWorker, Map.merge(%{key: key}, extra)}

  defp pids(ctx), do: H.child_pids(ctx.sup)

  defp alive?(pid), do: :erpc.call(node(pid), Process, :alive?, [pid])

  defp key_of(pid), do: GenServer.call(pid, :key)

  defp on(peer, fun, args), do: peer_call(peer, DynamicSupervisor, fun, args)

  # Receives every {:started, key, ...} for `keys` (any order); returns %{key => {pid, node}}.
  defp collect_started(keys, timeout \\ @converge) do
    Map.new(keys, fn key ->
      assert_receive {:started, ^key, pid, node, _t}, timeout
      {key, {pid, node}}
    end)
  end

  # ------------------------------------------------------------------ placement (pure)

  describe "placement" do
    test "libring's ring and Horde's identifiers: the reference vectors" do
      members = [{:sup, :a@host}, {:sup, :b@host}, {:sup, :c@host}]
      ring = HashRing.new(members)
      points = HashRing.points(ring)
      assert length(points) == 384

      assert Enum.take(points, 3) == [
               {3_243_723, {:sup, :a@host}},
               {10_001_554, {:sup, :a@host}},
               {26_357_309, {:sup, :c@host}}
             ]

      assert :erlang.phash2({{:sup, :a@host}, 1}, 4_294_967_295) == 1_599_996_183

      alive = for m <- members, do: %Member{name: m, status: :alive}

      for {spec, ident, owner} <- [
            {%{id: 1, start: {Worker, :start_link, [1]}}, 36_141_428, :b@host},
            {%{id: :x, restart: :transient, start: {Worker, :start_link, ["hello"]}}, 13_675_199,
             :a@host},
            {%{
               id: 7,
               shutdown: 10000,
               type: :worker,
               start: {Worker, :start_link, [[name: :foo]]}
             }, 111_761_925, :a@host}
          ] do
        assert HordeC.DistributionStrategy.identifier(spec) == ident

        assert {:ok, %Member{name: {:sup, ^owner}}} =
                 HordeC.UniformDistribution.choose_node(spec, alive)
      end

      two = Enum.take(alive, 2)

      assert {:ok, %Member{name: {:sup, :b@host}}} =
               HordeC.UniformDistribution.choose_node(
                 %{id: 1, start: {Worker, :start_link, [1]}},
                 two
               )

      dead = for m <- alive, do: %{m | status: :dead}
      assert HordeC.UniformDistribution.choose_node(36_141_428, dead) == {:error, :no_alive_nodes}
      assert HordeC.UniformRandomDistribution.choose_node(1, dead) == {:error, :no_alive_nodes}

      assert {:ok, %Member{status: :alive}} =
               HordeC.UniformRandomDistribution.choose_node(1, alive)
    end

    test "quorum: for any membership and its alive/dead mirror image, exactly one side has it" do
      statuses = [:alive, :dead, :uninitialized, :shutting_down]

      for n <- 1..6, _ <- 1..200 do
        members =
          for i <- 1..n, do: %Member{name: {:s, :"n#{i}@h"}, status: Enum.random(statuses)}

        mirror =
          for m <- members do
            case m.status do
              :alive -> %{m | status: :dead}
              :shutting_down -> m
              _ -> %{m | status: :alive}
            end
          end

        q = HordeC.UniformQuorumDistribution.has_quorum?(members)
        qm = HordeC.UniformQuorumDistribution.has_quorum?(mirror)

        if Enum.all?(members, &(&1.status == :shutting_down)),
          do: refute(q or qm),
          else: assert(q != qm, inspect({members, q, qm}))
      end

      refute HordeC.UniformQuorumDistribution.has_quorum?([])
    end
  end

  # ------------------------------------------------------------------ starting

  describe "starting" do
    test "child_spec/1, `use` and a module-based supervisor under a supervisor", ctx do
      assert DynamicSupervisor.child_spec(name: :x, strategy: :one_for_one) == %{
               id: :x,
               start: {DynamicSupervisor, :start_link, [[name: :x, strategy: :one_for_one]]},
               type: :supervisor
             }

      alias HordeC.DynamicSupervisorTest.ModuleSup
      spec = ModuleSup.child_spec({:msup, [ctx.h1]})
      assert spec.id == ModuleSup
      assert spec.restart == :transient
      assert spec.type == :supervisor

      start_supervised!({ModuleSup, {ctx.sup, [ctx.h1, ctx.h2]}})
      expected = Enum.sort([{ctx.sup, node()}, {ctx.sup, ctx.h1}, {ctx.sup, ctx.h2}])
      eventually(fn -> Cluster.members(ctx.sup) == expected end)
      assert {:ok, pid} = DynamicSupervisor.start_child(ctx.sup, worker(:m))
      assert node(pid) == node()
      # a request meant for a replica, sent to a member by mistake, is refused, not a crash
      assert GenServer.call(ctx.sup, {:attach, self(), %{}, []}) == {:error, :not_a_replica}
    end

    test "options are validated as Horde and Elixir's DynamicSupervisor validate them", ctx do
      ok = [name: ctx.sup, strategy: :one_for_one, hordec: ctx.h1]

      for {o, message} <- [
            {Keyword.delete(ok, :strategy), ~r/expected :strategy option to be given/},
            {Keyword.delete(ok, :name), ~r/expected :name to be given/},
            {ok ++ [distribution_strategy: Foo], ~r/expected :distribution_strategy/},
            {ok ++ [process_redistribution: :eager], ~r/expected :process_redistribution/},
            {ok ++ [members: :all], ~r/expected :members to be :auto or a list/},
            {Keyword.put(ok, :hordec, []), ~r/expected :hordec/},
            {ok ++ [timeout: 0], ~r/expected :timeout to be a positive integer/},
            {ok ++ [bogus: 1], ~r/unknown options for HordeC.DynamicSupervisor: \[:bogus\]/}
          ] do
        assert_raise ArgumentError, message, fn -> DynamicSupervisor.start_link(o) end
      end

      for {o, reason} <- [
            {Keyword.put(ok, :strategy, :one_for_all), {:invalid_strategy, :one_for_all}},
            {ok ++ [max_restarts: -1], {:invalid_intensity, -1}},
            {ok ++ [max_seconds: 0], {:invalid_period, 0}},
            {ok ++ [max_children: :lots], {:invalid_max_children, :lots}},
            {ok ++ [extra_arguments: :x], {:invalid_extra_arguments, :x}}
          ] do
        assert PeerHelpers.start_link_trapping(DynamicSupervisor, o) ==
                 {:error, {:supervisor_data, reason}}
      end

      # Horde's options that mean nothing here are accepted.
      start_supervised!(
        {DynamicSupervisor, ok ++ [proxy_message_ttl: 1, delta_crdt_options: [sync_interval: 5]]},
        id: ctx.sup
      )
    end

    test ":hordec defaults to the application environment", ctx do
      Application.put_env(:horde_c, :hordec, ctx.h1)
      on_exit(fn -> Application.delete_env(:horde_c, :hordec) end)
      start_supervised!({DynamicSupervisor, name: ctx.sup, strategy: :one_for_one}, id: ctx.sup)
      assert HordeC.Attachment.replica(ctx.sup) == {ctx.sup, ctx.h1}
    end
  end

  # ------------------------------------------------------------------ Horde's behaviours

  describe "children" do
    setup ctx do
      start_all(ctx)
      :ok
    end

    test "starts a process; which_children shows it on every node at once or soon", ctx do
      assert DynamicSupervisor.which_children(ctx.sup) == []
      assert {:ok, pid} = DynamicSupervisor.start_child(ctx.sup, worker(:one))
      assert alive?(pid)
      assert key_of(pid) == :one
      # read-your-writes on the node that started it
      assert DynamicSupervisor.which_children(ctx.sup) ==
               [{:undefined, pid, :worker, [SupWorker]}]

      for p <- [ctx.p1, ctx.p2] do
        eventually(fn ->
          on(p, :which_children, [ctx.sup]) == [{:undefined, pid, :worker, [SupWorker]}]
        end)
      end
    end

    test "the same spec twice gives two processes; a tuple id is fine", ctx do
      assert {:ok, a} = DynamicSupervisor.start_child(ctx.sup, worker(:same))
      assert {:ok, b} = DynamicSupervisor.start_child(ctx.sup, worker(:same))
      assert a != b

      spec = %{id: {:a, "tuple"}, start: {SupWorker, :start_link, [%{key: :tuple}]}}
      assert {:ok, c} = DynamicSupervisor.start_child(ctx.sup, spec)
      assert key_of(c) == :tuple
      assert length(DynamicSupervisor.which_children(ctx.sup)) == 3
    end

    test "a failed process is restarted, with a new pid, on the same member", ctx do
      {:ok, pid} = DynamicSupervisor.start_child(ctx.sup, worker(:fail))
      :erpc.call(node(pid), Process, :exit, [pid, :kill])

      new =
        eventually(fn ->
          case pids(ctx) do
            [new] when new != pid -> new
            _ -> nil
          end
        end)

      assert node(new) == node(pid)
      assert alive?(new)
      assert key_of(new) == :fail
    end

    test "processes are started on different members", ctx do
      for i <- 1..20, do: {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker({:spread, i}))
      nodes = pids(ctx) |> Enum.map(&node/1) |> Enum.uniq() |> Enum.sort()
      assert nodes == Enum.sort([node(), ctx.p1.node, ctx.p2.node])
    end

    test "which_children collects from every member, with :undefined ids", ctx do
      {:ok, a} = DynamicSupervisor.start_child(ctx.sup, worker(:w1))
      {:ok, b} = DynamicSupervisor.start_child(ctx.sup, worker(:w2))

      expected =
        Enum.sort([{:undefined, a, :worker, [SupWorker]}, {:undefined, b, :worker, [SupWorker]}])

      for where <- [:here, ctx.p1, ctx.p2] do
        eventually(fn ->
          got =
            if where == :here,
              do: DynamicSupervisor.which_children(ctx.sup),
              else: on(where, :which_children, [ctx.sup])

          Enum.sort(got) == expected
        end)
      end
    end

    test "count_children", ctx do
      assert DynamicSupervisor.count_children(ctx.sup) == %{
               specs: 0,
               active: 0,
               supervisors: 0,
               workers: 0
             }

      for i <- 1..10, do: {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker({:count, i}))

      sup_spec = %{id: :s, start: {SupWorker, :start_link, [%{key: :s}]}, type: :supervisor}
      {:ok, _} = DynamicSupervisor.start_child(ctx.sup, sup_spec)
      expected = %{specs: 11, active: 11, supervisors: 1, workers: 10}
      assert DynamicSupervisor.count_children(ctx.sup) == expected

      for p <- [ctx.p1, ctx.p2],
          do: eventually(fn -> on(p, :count_children, [ctx.sup]) == expected end)
    end

    test "terminate_child stops the child wherever it runs and removes it", ctx do
      started =
        for i <- 1..6, do: elem(DynamicSupervisor.start_child(ctx.sup, worker({:term, i})), 1)

      # at least one on a peer, one here (placement spreads them; checked above)
      for pid <- started do
        ref = Process.monitor(pid)
        assert DynamicSupervisor.terminate_child(ctx.sup, pid) == :ok
        assert_receive {:DOWN, ^ref, :process, ^pid, reason}, @converge
        assert reason in [:shutdown, :noproc]
        refute pid in pids(ctx)
      end

      assert DynamicSupervisor.count_children(ctx.sup).specs == 0
      assert DynamicSupervisor.terminate_child(ctx.sup, hd(started)) == {:error, :not_found}
      assert DynamicSupervisor.terminate_child(ctx.sup, self()) == {:error, :not_found}
    end

    test "temporary and transient children are removed when they end; failures restart them",
         ctx do
      me = self()
      # temporary, normal exit: removed
      {:ok, _} =
        DynamicSupervisor.start_child(ctx.sup, {SupTask, %{key: :tmp, ms: 50, listener: me}})

      # transient, normal exit: removed
      {:ok, _} =
        DynamicSupervisor.start_child(
          ctx.sup,
          {SupTask, %{key: :trn, ms: 50, restart: :transient, listener: me}}
        )

      # transient, abnormal exit: restarted, then a normal exit removes it
      {:ok, t} =
        DynamicSupervisor.start_child(
          ctx.sup,
          Supervisor.child_spec(worker(:trn_fail), restart: :transient)
        )

      # permanent, even a normal exit: restarted
      {:ok, p} = DynamicSupervisor.start_child(ctx.sup, worker(:perm))

      assert_receive {:ran, :tmp, _, _}, @converge
      assert_receive {:ran, :trn, _, _}, @converge
      assert GenServer.call(t, {:stop, :boom}) == :ok
      assert GenServer.call(p, {:stop, :normal}) == :ok

      eventually(fn ->
        kids = pids(ctx)
        length(kids) == 2 and t not in kids and p not in kids
      end)

      [t2] = for pid <- pids(ctx), key_of(pid) == :trn_fail, do: pid
      assert GenServer.call(t2, {:stop, :normal}) == :ok
      eventually(fn -> Enum.map(pids(ctx), &key_of/1) == [:perm] end)
      refute_received {:ran, :tmp, _, _}
      refute_received {:ran, :trn, _, _}
    end

    test "start results: :ignore, {:error, reason}, exceptions, invalid specs", ctx do
      assert DynamicSupervisor.start_child(ctx.sup, {SupIgnore, :x}) == :ignore

      assert DynamicSupervisor.start_child(ctx.sup, {SupIgnore, {:error, :nope}}) ==
               {:error, :nope}

      assert {:error, {:badarg, [_ | _]}} =
               DynamicSupervisor.start_child(ctx.sup, %{
                 id: :r,
                 start: {String, :to_existing_atom, ["surely not an existing atom 1234"]}
               })

      assert DynamicSupervisor.start_child(ctx.sup, %{
               id: :r,
               start: {SupWorker, :start_link, [%{}]},
               restart: :sometimes
             }) ==
               {:error, {:invalid_restart_type, :sometimes}}

      assert_raise ArgumentError, fn ->
        DynamicSupervisor.start_child(ctx.sup, {:not, :a, :spec})
      end

      assert DynamicSupervisor.count_children(ctx.sup).specs == 0
    end

    test "which_children and count_children answer at once while a member is busy starting a child",
         ctx do
      slow =
        Task.async(fn ->
          DynamicSupervisor.start_child(ctx.sup, worker(:slow, %{init_ms: 1_500}))
        end)

      Process.sleep(100)
      {us, kids} = :timer.tc(fn -> DynamicSupervisor.which_children(ctx.sup) end)
      assert kids == []
      assert us < 100_000
      assert {:ok, _} = Task.await(slow)
      assert length(DynamicSupervisor.which_children(ctx.sup)) == 1
    end

    test "2000 children: the count matches everywhere", ctx do
      results = H.start_many(ctx.sup, 2000, &worker({:many, &1}))
      assert Enum.all?(results, &match?({:ok, _}, &1))
      expected = %{specs: 2000, active: 2000, supervisors: 0, workers: 2000}
      assert DynamicSupervisor.count_children(ctx.sup) == expected

      for p <- [ctx.p1, ctx.p2],
          do: eventually(fn -> on(p, :count_children, [ctx.sup]) == expected end, 15_000)

      assert length(Enum.uniq(pids(ctx))) == 2000
    end
  end

  describe "random distribution" do
    test "many transient children on random members: each runs exactly once", ctx do
      start_all(ctx, distribution_strategy: HordeC.UniformRandomDistribution)
      me = self()

      results =
        H.start_many(
          ctx.sup,
          200,
          &{SupTask, %{key: &1, ms: 10, restart: :transient, listener: me}}
        )

      assert Enum.all?(results, &match?({:ok, _}, &1))

      ran =
        for _ <- 1..200 do
          assert_receive {:ran, key, _pid, node}, @converge
          {key, node}
        end

      assert ran |> Enum.map(&elem(&1, 0)) |> Enum.sort() == Enum.to_list(1..200)
      assert ran |> Enum.map(&elem(&1, 1)) |> Enum.uniq() |> length() == 3
      eventually(fn -> DynamicSupervisor.count_children(ctx.sup).specs == 0 end)
      refute_receive {:ran, _, _, _}, 300
    end
  end

  # ------------------------------------------------------------------ members coming and going

  describe "members" do
    test "a BEAM member's node killed: its permanent children run elsewhere, temporary ones are gone",
         ctx do
      p3 = start_peer()
      start_here(ctx)
      start_on(ctx, ctx.p1, [], [ctx.h1, ctx.h2])
      start_on(ctx, p3, [], [ctx.h2, ctx.h1])
      wait_beam_members(ctx, [node(), ctx.p1.node, p3.node], [:here])

      perm =
        for i <- 1..30, do: elem(DynamicSupervisor.start_child(ctx.sup, worker({:perm, i})), 1)

      temp =
        for i <- 1..30 do
          spec = Supervisor.child_spec(worker({:temp, i}), restart: :temporary)
          elem(DynamicSupervisor.start_child(ctx.sup, spec), 1)
        end

      temp_lost = for pid <- temp, node(pid) == p3.node, do: pid
      assert Enum.any?(perm, &(node(&1) == p3.node))
      assert temp_lost != []

      t0 = System.monotonic_time(:millisecond)
      signal(p3, "KILL")

      eventually(fn ->
        kids = pids(ctx)
        length(kids) == 60 - length(temp_lost) and Enum.all?(kids, &(node(&1) != p3.node))
      end)

      elapsed = System.monotonic_time(:millisecond) - t0
      assert elapsed < 3_000, "took #{elapsed} ms"

      kept_temp = for {pid, i} <- Enum.with_index(temp, 1), node(pid) != p3.node, do: {:temp, i}
      keys = pids(ctx) |> Enum.map(&key_of/1) |> Enum.sort()
      assert keys == Enum.sort(for(i <- 1..30, do: {:perm, i}) ++ kept_temp)

      assert Enum.all?(pids(ctx), &alive?/1)
    end

    test "stop/3 hands the children over: they restart elsewhere after their terminate/2 finished",
         ctx do
      start_all(ctx)
      me = self()
      keys = for i <- 1..12, do: {:handoff, i}

      for k <- keys,
          do:
            {:ok, _} =
              DynamicSupervisor.start_child(
                ctx.sup,
                worker(k, %{listener: me, trap: true, terminate_ms: 500})
              )

      where = collect_started(keys)
      moving = for {k, {_, n}} <- where, n == ctx.p1.node, do: k
      assert moving != []

      assert peer_call(ctx.p1, DynamicSupervisor, :stop, [ctx.sup]) == :ok

      for k <- moving do
        assert_receive {:terminated, ^k, _, p1node, :shutdown, t_end}, @converge
        assert p1node == ctx.p1.node
        assert_receive {:started, ^k, _pid, n, t_start}, @converge
        assert n != ctx.p1.node
        assert t_start >= t_end, "#{inspect(k)} restarted before its terminate finished"
      end

      eventually(fn ->
        kids = pids(ctx)
        length(kids) == 12 and Enum.all?(kids, &(node(&1) != ctx.p1.node))
      end)

      assert pids(ctx) |> Enum.map(&key_of/1) |> Enum.sort() == Enum.sort(keys)
      # nothing else started: no duplicate
      refute_received {:started, _, _, _, _}
    end

    test ":init.stop() on a BEAM member hands its children over", ctx do
      p4 = start_peer()
      start_here(ctx)

      assert {:ok, _} =
               peer_call(p4, H, :start_sup_under_app, [opts(ctx, hordec: [ctx.h2, ctx.h1])])

      wait_beam_members(ctx, [node(), p4.node], [:here])
      me = self()
      keys = for i <- 1..12, do: {:init_stop, i}

      for k <- keys,
          do:
            {:ok, _} =
              DynamicSupervisor.start_child(ctx.sup, worker(k, %{listener: me, trap: true}))

      where = collect_started(keys)
      moving = for {k, {_, n}} <- where, n == p4.node, do: k
      assert moving != []

      peer_cast(p4, :init, :stop, [])

      for k <- moving do
        assert_receive {:terminated, ^k, _, _, :shutdown, _}, @converge
        assert_receive {:started, ^k, _, n, _}, @converge
        assert n == node()
      end

      eventually(fn -> length(pids(ctx)) == 12 and Enum.all?(pids(ctx), &(node(&1) == node())) end)
    end

    test "kill -9 of the hordec a member is attached to: it fails over, its children keep running",
         ctx do
      [h3, h4] = start_hordecs(2)
      start_here(ctx, [], [h3.node, h4.node])
      start_on(ctx, ctx.p1, [], [h4.node, h3.node])
      wait_beam_members(ctx, [node(), ctx.p1.node], [:here])

      beam = for i <- 1..20, do: elem(DynamicSupervisor.start_child(ctx.sup, worker({:fo, i})), 1)

      c =
        for i <- 1..6,
            do:
              elem(
                DynamicSupervisor.start_child(ctx.sup, {HordeC.CWorker, type: "echo", arg: i}),
                1
              )

      assert Enum.all?(c, &(node(&1) in [h3.node, h4.node]))
      assert HordeC.Attachment.replica(ctx.sup) == {ctx.sup, h3.node}
      # Replicated to h4 (p1 mirrors h4) before h3 dies: what h3 alone held would die with it.
      eventually(fn -> on(ctx.p1, :count_children, [ctx.sup]).specs == 26 end)

      signal(h3, "KILL")
      eventually(fn -> HordeC.Attachment.replica(ctx.sup) == {ctx.sup, h4.node} end, @converge)

      # BEAM children were never stopped; C workers of the dead hordec run again on the other.
      eventually(fn ->
        kids = pids(ctx)
        assert beam -- kids == []
        assert Enum.count(kids, &(node(&1) == h4.node)) == 6
        assert length(kids) == 26
      end)

      assert Enum.all?(beam, &alive?/1)
      args = for pid <- pids(ctx), node(pid) == h4.node, do: GenServer.call(pid, {:echo, :ok})
      assert args == List.duplicate(:ok, 6)
      assert {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker(:after_failover))
    end

    test "HordeC.Cluster: set_members/members for supervisors; a member removed hands over its children",
         ctx do
      %{sup: sup, h1: h1, h2: h2} = ctx
      all = [{sup, h1}, {sup, h2}, {sup, node()}, {sup, ctx.p1.node}]
      start_here(ctx, members: all)
      start_on(ctx, ctx.p1, [members: all], [h1, h2])
      wait_beam_members(ctx, [node(), ctx.p1.node], [:here, ctx.p1])
      assert Cluster.members(sup) == Enum.sort(all)
      assert Cluster.set_members(sup, all) == :ok
      assert Cluster.members(sup) == Enum.sort(all)
      eventually(fn -> peer_call(ctx.p1, Cluster, :members, [sup]) == Enum.sort(all) end)

      keys = for i <- 1..12, do: {:cluster, i}
      for k <- keys, do: {:ok, _} = DynamicSupervisor.start_child(sup, worker(k))
      on_p1 = for pid <- pids(ctx), node(pid) == ctx.p1.node, do: pid
      assert on_p1 != []

      # p1 leaves the membership: its children are restarted here, its copies stop.
      assert Cluster.set_members(sup, [sup, {sup, node()}]) == :ok
      assert Cluster.members(sup) == Enum.sort([{sup, h1}, {sup, h2}, {sup, node()}])

      eventually(fn ->
        kids = pids(ctx)
        length(kids) == 12 and Enum.all?(kids, &(node(&1) == node()))
      end)

      assert pids(ctx) |> Enum.map(&key_of/1) |> Enum.sort() == Enum.sort(keys)
      eventually(fn -> not Enum.any?(on_p1, &alive?/1) end)
      assert {:ok, pid} = DynamicSupervisor.start_child(sup, worker(:after))
      assert node(pid) == node()
    end

    test "UniformQuorumDistribution: wait_for_quorum, and no start without quorum", ctx do
      members =
        [{ctx.sup, ctx.h1}, {ctx.sup, node()}, {ctx.sup, ctx.p1.node}] ++
          for(g <- ["ghost_a", "ghost_b"], do: {ctx.sup, :"#{g}@127.0.0.1"})

      extra = [distribution_strategy: HordeC.UniformQuorumDistribution, members: members]
      start_here(ctx, extra, [ctx.h1])
      eventually(fn -> Cluster.members(ctx.sup) == Enum.sort(members) end)

      # 2 of 5 alive (h1's replica and this node)
      catch_exit(DynamicSupervisor.wait_for_quorum(ctx.sup, 300))
      assert DynamicSupervisor.start_child(ctx.sup, worker(:q)) == {:error, :quorum_not_met}

      start_on(ctx, ctx.p1, extra, [ctx.h1])
      assert DynamicSupervisor.wait_for_quorum(ctx.sup, @converge) == :ok
      assert on(ctx.p1, :wait_for_quorum, [ctx.sup, @converge]) == :ok
      assert {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker(:q))
    end

    test "process_redistribution: :active moves children to a new member, with {:shutdown, :process_redistribution}",
         ctx do
      extra = [process_redistribution: :active]
      start_here(ctx, extra)
      start_on(ctx, ctx.p1, extra, [ctx.h1, ctx.h2])
      wait_beam_members(ctx, [node(), ctx.p1.node], [:here])
      me = self()
      keys = for i <- 1..24, do: {:active, i}

      for k <- keys,
          do:
            {:ok, _} =
              DynamicSupervisor.start_child(ctx.sup, worker(k, %{listener: me, trap: true}))

      collect_started(keys)
      start_on(ctx, ctx.p2, extra, [ctx.h2, ctx.h1])
      wait_beam_members(ctx, [node(), ctx.p1.node, ctx.p2.node], [:here])

      # Every child ends up where the ring places it now.
      eventually(
        fn ->
          Enum.all?(pids(ctx), fn pid ->
            {:ok, {_, n}} =
              DynamicSupervisor.placement(
                ctx.sup,
                worker(key_of(pid), %{listener: me, trap: true})
              )

            node(pid) == n
          end) and length(pids(ctx)) == 24
        end,
        10_000
      )

      moved = for pid <- pids(ctx), node(pid) == ctx.p2.node, do: key_of(pid)
      assert moved != []

      for k <- moved do
        assert_receive {:terminated, ^k, _, _, {:shutdown, :process_redistribution}, _}, @converge
      end
    end

    test "process_redistribution: :passive leaves running children where they are", ctx do
      start_here(ctx)
      start_on(ctx, ctx.p1, [], [ctx.h1, ctx.h2])
      wait_beam_members(ctx, [node(), ctx.p1.node], [:here])
      for i <- 1..24, do: {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker({:passive, i}))
      before = Enum.sort(pids(ctx))

      start_on(ctx, ctx.p2, [], [ctx.h2, ctx.h1])
      wait_beam_members(ctx, [node(), ctx.p1.node, ctx.p2.node], [:here])
      Process.sleep(1_000)
      assert Enum.sort(pids(ctx)) == before

      # new children are placed on the new member too
      for i <- 1..24,
          do: {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker({:passive2, i}))

      assert Enum.any?(pids(ctx), &(node(&1) == ctx.p2.node))
    end
  end

  # ------------------------------------------------------------------ C workers, intensity

  describe "C workers and limits" do
    test "started on a hordec member, called with GenServer.call, killed and restarted", ctx do
      start_here(ctx)

      assert {:ok, pid} =
               DynamicSupervisor.start_child(ctx.sup, {HordeC.CWorker, type: "echo", arg: 1})

      assert node(pid) in [ctx.h1, ctx.h2]
      assert GenServer.call(pid, {:echo, {:hi, [1, 2]}}) == {:hi, [1, 2]}

      assert DynamicSupervisor.which_children(ctx.sup) == [
               {:undefined, pid, :worker, [HordeC.CWorker]}
             ]

      Process.exit(pid, :kill)

      new =
        eventually(fn ->
          case pids(ctx) do
            [new] when new != pid -> new
            _ -> nil
          end
        end)

      assert GenServer.call(new, {:echo, :again}) == :again
      assert DynamicSupervisor.terminate_child(ctx.sup, new) == :ok
      assert pids(ctx) == []

      assert DynamicSupervisor.start_child(ctx.sup, {HordeC.CWorker, type: "nope"}) ==
               {:error, {:unknown_worker_type, "nope"}}

      assert_raise ArgumentError, ~r/cannot be started on a BEAM node/, fn ->
        HordeC.CWorker.start_link(type: "echo")
      end
    end

    test "max_children (per member) and extra_arguments", ctx do
      # Only this runner runs BEAM children of this supervisor.
      start_here(ctx, max_children: 2, extra_arguments: [:extra_arg])
      assert {:ok, a} = DynamicSupervisor.start_child(ctx.sup, worker(:a))
      assert GenServer.call(a, :extra) == :extra_arg
      assert {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker(:b))
      assert DynamicSupervisor.start_child(ctx.sup, worker(:c)) == {:error, :max_children}
      assert DynamicSupervisor.count_children(ctx.sup).specs == 2
      assert DynamicSupervisor.terminate_child(ctx.sup, a) == :ok
      assert {:ok, _} = DynamicSupervisor.start_child(ctx.sup, worker(:c))
    end

    test "a crash-looping child is given up; the member's other children keep running", ctx do
      # Only this runner runs BEAM children of this supervisor: all of them share its intensity.
      start_here(ctx, max_restarts: 3, max_seconds: 5)
      me = self()

      others =
        for i <- 1..3, do: elem(DynamicSupervisor.start_child(ctx.sup, worker({:calm, i})), 1)

      assert Enum.all?(others, &(node(&1) == node()))

      {:ok, _} =
        DynamicSupervisor.start_child(
          ctx.sup,
          {SupTask, %{key: :loop, ms: 20, reason: :boom, restart: :permanent, listener: me}}
        )

      eventually(fn -> DynamicSupervisor.count_children(ctx.sup).specs == 3 end)
      # started once, restarted max_restarts times, then given up
      runs =
        Stream.repeatedly(fn -> receive(do: ({:ran, :loop, _, _} -> 1), after: (200 -> nil)) end)

      assert runs |> Enum.take_while(& &1) |> length() == 4
      assert Enum.sort(pids(ctx)) == Enum.sort(others)
      assert Enum.all?(others, &Process.alive?/1)
      assert Process.alive?(Process.whereis(ctx.sup))
    end
  end
end
