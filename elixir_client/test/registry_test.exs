defmodule HordeC.RegistryTest.ModuleRegistry do
  # A module-based registry, as in Horde's tests: use + start_link/3 + init/1.
  use HordeC.Registry, restart: :transient, type: :worker

  def start_link({name, hordecs}),
    do: HordeC.Registry.start_link(__MODULE__, {name, hordecs}, name: name)

  @impl true
  def init({_name, hordecs}) do
    HordeC.Registry.init(keys: :unique, hordec: hordecs, meta: [from_init: true])
  end
end

defmodule HordeC.RegistryTest.Ignoring do
  use HordeC.Registry
  @impl true
  def init(:ignore), do: :ignore
  def init(:junk), do: {:what, :ever}
end

defmodule HordeC.RegistryTest do
  @moduledoc """
  `HordeC.Registry` on a real cluster: two hordec nodes and three BEAM nodes (this runner and
  two peers), each BEAM node running the registry's client. Ports the behaviours of Horde's
  `registry_test.exs` (see ../shared/reference/horde-0.10-semantics.md §6) plus the fixes this
  implementation makes (atomic registration, read-your-writes, own-keys-only unregister, reads
  that never return a dead process).
  """
  use HordeC.InteropCase, async: false

  alias HordeC.{Cluster, Registry}
  alias HordeC.Test.RegistryHelpers, as: H
  alias HordeC.RegistryTest.ModuleRegistry

  @converge 5_000

  setup_all do
    [h1, h2] = start_hordecs(2)
    p1 = start_peer()
    p2 = start_peer()
    %{h1: h1.node, h2: h2.node, p1: p1, p2: p2}
  end

  # A fresh registry per test, on the runner (attached to h1) and both peers (p1 to h1, p2 to h2).
  setup ctx do
    reg = :"reg_#{System.unique_integer([:positive])}"
    opts = [name: reg, keys: Map.get(ctx, :keys, :unique)] ++ Map.get(ctx, :reg_opts, [])

    # Membership managed with HordeC.Cluster needs an explicit list: with :auto, every attach
    # (a failover, or an attach record dropped by a removed member) adds the node's hordecs back.
    opts =
      if ctx[:explicit_members],
        do: opts ++ [members: [{reg, ctx.h1}, {reg, ctx.h2}]],
        else: opts

    start_supervised!({Registry, opts ++ [hordec: [ctx.h1, ctx.h2]]})

    for {p, hs} <- [{ctx.p1, [ctx.h1, ctx.h2]}, {ctx.p2, [ctx.h2, ctx.h1]}] do
      assert {:ok, _} = peer_call(p, H, :start_registry, [opts ++ [hordec: hs]])
    end

    on_exit(fn ->
      for p <- [ctx.p1, ctx.p2], do: stop_on(p, reg)
    end)

    %{reg: reg}
  end

  def forward(entries, to), do: send(to, {:dispatched, entries})

  # Stops the registry on a peer after a test, whatever state the peer is in.
  defp stop_on(peer, reg) do
    peer_call(peer, H, :stop_registry, [reg])
  catch
    _, _ -> :ok
  end

  defp on(peer, fun, args), do: peer_call(peer, Registry, fun, args)
  defp holder(peer, opts \\ []), do: peer_call(peer, H, :holder, [self(), opts])
  defp hrun(holder, fun, args), do: H.run(holder, Registry, fun, args)

  # ------------------------------------------------------------------ starting

  describe "starting" do
    test "child_spec/1 and `use` overrides", %{h1: h1} do
      assert Registry.child_spec(name: :x, keys: :unique) == %{
               id: :x,
               start: {Registry, :start_link, [[name: :x, keys: :unique]]}
             }

      spec = ModuleRegistry.child_spec({:mreg, [h1]})
      assert spec.id == ModuleRegistry
      assert spec.restart == :transient
      assert spec.type == :worker
      assert spec.start == {ModuleRegistry, :start_link, [{:mreg, [h1]}]}
    end

    test "a module-based registry takes its options from init/1 and runs under a supervisor",
         %{h1: h1, h2: h2} do
      name = :"mreg_#{System.unique_integer([:positive])}"
      # under the test's supervisor, through the child_spec/1 that `use` generated
      start_supervised!({ModuleRegistry, {name, [h1, h2]}})

      assert Registry.meta(name, :from_init) == {:ok, true}
      assert Cluster.members(name) == Enum.sort([{name, h1}, {name, h2}])
      assert {:ok, _} = Registry.register(name, :k, 1)
      assert Registry.lookup(name, :k) == [{self(), 1}]
    end

    test "init/1 returning :ignore or junk", %{h1: h1} do
      alias HordeC.RegistryTest.Ignoring
      assert Registry.start_link(Ignoring, :ignore, name: :ign) == :ignore
      Process.flag(:trap_exit, true)

      assert {:error, {:bad_return, {Ignoring, :init, {:what, :ever}}}} =
               Registry.start_link(Ignoring, :junk, name: :junk_reg)

      _ = h1
    end

    test "options are validated as Elixir's Registry validates them", %{h1: h1} do
      ok = [name: :v, keys: :unique, hordec: h1]

      for {opts, message} <- [
            {Keyword.delete(ok, :name), ~r/expected :name to be given and to be an atom/},
            {Keyword.put(ok, :name, "str"), ~r/expected :name .* got: "str"/},
            {Keyword.delete(ok, :keys),
             ~r/expected :keys to be given and be one of :unique or :duplicate/},
            {Keyword.put(ok, :keys, :bogus), ~r/got: :bogus/},
            {ok ++ [listeners: [self()]],
             ~r/expected :listeners to be a list of named processes/},
            {ok ++ [meta: [{"k", 1}]], ~r/expected :meta to be a list of \{key, value\}/},
            {ok ++ [members: :all], ~r/expected :members to be :auto or a list/},
            {Keyword.put(ok, :hordec, []),
             ~r/expected :hordec .* to be a hordec node or a non-empty list/},
            {Keyword.put(ok, :hordec, ["h@x"]), ~r/expected :hordec/},
            {ok ++ [timeout: 0], ~r/expected :timeout to be a positive integer/},
            {ok ++ [bogus: 1], ~r/unknown options for HordeC.Registry: \[:bogus\]/}
          ] do
        assert_raise ArgumentError, message, fn -> Registry.start_link(opts) end
      end

      # Horde's options that mean nothing here are accepted.
      name = :"horde_opts_#{System.unique_integer([:positive])}"

      start_supervised!(
        {Registry,
         Keyword.put(ok, :name, name) ++ [partitions: 4, delta_crdt_options: [sync_interval: 10]]},
        id: name
      )
    end

    test ":hordec defaults to the application environment", %{h1: h1} do
      Application.put_env(:horde_c, :hordec, h1)
      on_exit(fn -> Application.delete_env(:horde_c, :hordec) end)
      name = :"env_#{System.unique_integer([:positive])}"
      start_supervised!({Registry, name: name, keys: :unique}, id: name)
      assert HordeC.Attachment.replica(name) == {name, h1}
    end

    test "stop/3 removes this node's registrations everywhere", ctx do
      %{reg: reg} = ctx
      h = H.holder(self())
      {:ok, _} = H.run(h, Registry, :register, [reg, :stopping, 1])
      eventually(fn -> on(ctx.p2, :lookup, [reg, :stopping]) == [{h, 1}] end)
      assert Registry.stop(reg) == :ok
      eventually(fn -> on(ctx.p2, :lookup, [reg, :stopping]) == [] end)
      assert Process.alive?(h)
    end

    test "meta given at start is there when start_link returns", %{h1: h1} do
      name = :"meta_#{System.unique_integer([:positive])}"

      start_supervised!({Registry, name: name, keys: :unique, hordec: h1, meta: [a: 1, b: {2}]},
        id: name
      )

      assert Registry.meta(name, :a) == {:ok, 1}
      assert Registry.meta(name, :b) == {:ok, {2}}
    end
  end

  # ------------------------------------------------------------------ membership

  describe "membership" do
    test "members: :auto is every listed hordec's replica, the same on every node", ctx do
      expected = Enum.sort([{ctx.reg, ctx.h1}, {ctx.reg, ctx.h2}])
      assert Cluster.members(ctx.reg) == expected

      for p <- [ctx.p1, ctx.p2] do
        eventually(fn -> peer_call(p, Cluster, :members, [ctx.reg]) == expected end)
      end
    end

    @tag :explicit_members
    test "set_members/2 is replicated; setting it twice gives the same", ctx do
      %{reg: reg, h1: h1, h2: h2} = ctx

      # The peers' first attach wrote the explicit membership through h2: a delete removes only the writes its
      # replica has seen (add-wins), so let every replica have seen them before replacing the membership.
      eventually(fn ->
        Enum.all?([h1, h2], fn h -> GenServer.call({reg, h}, :stats)[:idle] == true end)
      end)

      assert Cluster.set_members(reg, [{reg, h1}, {:other, h2}]) == :ok
      assert Cluster.members(reg) == Enum.sort([{reg, h1}, {:other, h2}])
      assert Cluster.set_members(reg, [{reg, h1}, {:other, h2}]) == :ok
      assert Cluster.members(reg) == Enum.sort([{reg, h1}, {:other, h2}])
      eventually(fn -> peer_call(ctx.p2, Cluster, :members, [reg]) == Cluster.members(reg) end)
      # a bare name stands for that name on every hordec of the local process
      assert Cluster.set_members(reg, [reg]) == :ok
      assert Cluster.members(reg) == Enum.sort([{reg, h1}, {reg, h2}])
    end

    @tag :explicit_members
    test "a member removed takes the registrations of the nodes attached through it", ctx do
      %{reg: reg, h1: h1, h2: h2, p2: p2} = ctx
      h = holder(p2)
      assert {:ok, _} = hrun(h, :register, [reg, :on_p2, 1])
      eventually(fn -> Registry.lookup(reg, :on_p2) == [{h, 1}] end)
      # p2 is attached through h2: dropping h2 from the members drops p2's names (as Horde does).
      assert Cluster.set_members(reg, [{reg, h1}]) == :ok
      eventually(fn -> Registry.lookup(reg, :on_p2) == [] end, @converge)
      _ = h2
    end
  end

  # ------------------------------------------------------------------ register / unregister

  describe "register" do
    test "has unique registrations", %{reg: reg} do
      assert {:ok, owner} = Registry.register(reg, "hello", :value)
      assert owner == Process.whereis(reg)
      assert Registry.keys(reg, self()) == ["hello"]
      assert Registry.register(reg, "hello", :value) == {:error, {:already_registered, self()}}
      assert {:ok, _} = Registry.register(reg, "world", :value)
      assert Enum.sort(Registry.keys(reg, self())) == ["hello", "world"]
    end

    test "has unique registrations across processes and nodes", ctx do
      %{reg: reg} = ctx
      h = holder(ctx.p1)
      assert {:ok, _} = hrun(h, :register, [reg, "hello", :value])
      # through the same hordec (p1 and the runner use h1) and through the other one (p2 uses h2)
      assert Registry.register(reg, "hello", :value) == {:error, {:already_registered, h}}
      assert Registry.keys(reg, self()) == []

      # through h2 once it has the entry (before that, it would be a conflict: see the fault tests)
      eventually(fn -> on(ctx.p2, :lookup, [reg, "hello"]) == [{h, :value}] end)
      assert on(ctx.p2, :register, [reg, "hello", :x]) == {:error, {:already_registered, h}}
    end

    test "registering is atomic: of concurrent registrations of one key, exactly one wins", ctx do
      %{reg: reg, p1: p1} = ctx
      {pids, results} = peer_call(p1, H, :race, [reg, :contended, 40])
      winners = for {pid, {:ok, _}} <- Enum.zip(pids, results), do: pid
      assert [winner] = winners

      assert Enum.count(results, &(&1 == {:error, {:already_registered, winner}})) == 39,
             inspect(results)

      eventually(fn ->
        Registry.lookup(reg, :contended) == [{winner, Enum.find_index(pids, &(&1 == winner)) + 1}]
      end)

      peer_call(p1, H, :release, [pids])
    end

    test "read-your-writes, under load on one node", ctx do
      assert peer_call(ctx.p1, H, :read_your_writes, [ctx.reg, 20, 20], 60_000) == []
    end

    test "a write is seen by every node", ctx do
      %{reg: reg} = ctx
      assert {:ok, _} = Registry.register(reg, :k, %{v: [1]})

      for p <- [ctx.p1, ctx.p2] do
        eventually(fn -> on(p, :lookup, [reg, :k]) == [{self(), %{v: [1]}}] end)
      end
    end

    test "can unregister, locally at once and everywhere after", ctx do
      %{reg: reg} = ctx
      {:ok, _} = Registry.register(reg, "hello", :value)
      eventually(fn -> on(ctx.p2, :lookup, [reg, "hello"]) != [] end)
      assert Registry.unregister(reg, "hello") == :ok
      assert Registry.lookup(reg, "hello") == []
      assert Registry.keys(reg, self()) == []
      eventually(fn -> on(ctx.p2, :lookup, [reg, "hello"]) == [] end)
      eventually(fn -> on(ctx.p1, :keys, [reg, self()]) == [] end)
    end

    test "a process can only unregister its own keys", ctx do
      %{reg: reg} = ctx
      h = holder(ctx.p2)
      {:ok, _} = hrun(h, :register, [reg, "theirs", 1])
      eventually(fn -> Registry.lookup(reg, "theirs") == [{h, 1}] end)
      assert Registry.unregister(reg, "theirs") == :ok
      assert on(ctx.p1, :unregister, [reg, "theirs"]) == :ok
      assert Registry.lookup(reg, "theirs") == [{h, 1}]
      assert hrun(h, :lookup, [reg, "theirs"]) == [{h, 1}]
    end

    test "unregister_match/4 removes only the caller's matching entry", %{reg: reg} do
      {:ok, _} = Registry.register(reg, "hello", :value)
      assert Registry.unregister_match(reg, "hello", :other) == :ok
      assert Registry.lookup(reg, "hello") == [{self(), :value}]
      assert Registry.unregister_match(reg, "hello", :"$1", [{:is_integer, :"$1"}]) == :ok
      assert Registry.lookup(reg, "hello") == [{self(), :value}]
      assert Registry.unregister_match(reg, "hello", :"$1", [{:is_atom, :"$1"}]) == :ok
      assert Registry.lookup(reg, "hello") == []

      {:ok, _} = Registry.register(reg, "tuple", {:a, 1})
      assert Registry.unregister_match(reg, "tuple", {:a, :_}) == :ok
      assert Registry.lookup(reg, "tuple") == []
      assert Registry.unregister_match(reg, "missing", :_) == :ok
    end

    test "a value too big for the replicas is refused with an ArgumentError", %{reg: reg} do
      huge = :binary.copy("x", 3_000_000)

      assert_raise ArgumentError, ~r/too big for the registry's replicas/, fn ->
        Registry.register(reg, :huge, huge)
      end

      assert Registry.lookup(reg, :huge) == []
      assert {:ok, _} = Registry.register(reg, :small, 1)
    end

    test "update_value/3 updates own values only", ctx do
      %{reg: reg} = ctx
      {:ok, _} = Registry.register(reg, "foo", "foo")
      assert Registry.update_value(reg, "foo", fn "foo" -> "bar" end) == {"bar", "foo"}
      assert Registry.lookup(reg, "foo") == [{self(), "bar"}]
      eventually(fn -> on(ctx.p2, :lookup, [reg, "foo"]) == [{self(), "bar"}] end)

      h = holder(ctx.p1)
      {:ok, _} = hrun(h, :register, [reg, "theirs", 1])
      eventually(fn -> Registry.lookup(reg, "theirs") != [] end)
      assert Registry.update_value(reg, "theirs", &(&1 + 1)) == :error
      assert Registry.update_value(reg, "missing", & &1) == :error
      assert hrun(h, :lookup, [reg, "theirs"]) == [{h, 1}]
    end

    test "a registered process that exits is removed everywhere", ctx do
      %{reg: reg} = ctx
      h = holder(ctx.p1)
      {:ok, _} = hrun(h, :register, [reg, "name", :v])
      {:ok, _} = hrun(h, :register, [reg, {:other, 1}, :v])

      for p <- [ctx.p2], do: eventually(fn -> on(p, :count, [reg]) == 2 end)
      eventually(fn -> Registry.count(reg) == 2 end)
      send(h, {:stop, :normal})

      eventually(fn -> Registry.count_match(reg, "name", :_) == 0 end)
      assert Registry.keys(reg, h) == []
      eventually(fn -> on(ctx.p2, :count, [reg]) == 0 end)
      assert on(ctx.p2, :select, [reg, [{{:_, :_, :_}, [], [:"$_"]}]]) == []
      assert on(ctx.p1, :keys, [reg, h]) == []
    end

    test "a dead local process is never returned, even before its registry hears of it",
         %{reg: reg} do
      parent = self()

      pid =
        spawn(fn ->
          {:ok, _} = Registry.register(reg, :doomed, 1)
          send(parent, :registered)
          Process.sleep(:infinity)
        end)

      assert_receive :registered
      ref = Process.monitor(pid)
      # Suspend the registry process so that it cannot handle the DOWN before we read.
      :sys.suspend(reg)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}

      try do
        assert Registry.lookup(reg, :doomed) == []
        assert Registry.match(reg, :doomed, :_) == []
        assert Registry.keys(reg, pid) == []
        assert Registry.values(reg, :doomed, pid) == []
        assert Registry.select(reg, [{{:_, :"$1", :_}, [], [:"$1"]}]) == []
        assert Registry.count_select(reg, [{{:_, :_, :_}, [], [true]}]) == 0
        assert Registry.whereis_name({reg, :doomed}) == :undefined
      after
        :sys.resume(reg)
      end

      eventually(fn -> Registry.count(reg) == 0 end)
    end

    test "a process holding many names dies: each goes, from every node and every replica", ctx do
      %{reg: reg} = ctx
      n = 5_000
      h = holder(ctx.p1)
      keys = for i <- 1..n, do: {:many, i}
      assert H.run(h, H, :register_keys, [reg, keys], 60_000) == :ok
      dropped = for i <- 1..n//7, do: {:many, i}
      assert H.run(h, H, :unregister_keys, [reg, dropped], 60_000) == :ok
      left = Enum.sort(keys -- dropped)
      assert Enum.sort(on(ctx.p1, :keys, [reg, h])) == left
      eventually(fn -> Registry.count(reg) == length(left) end, 20_000)
      assert Enum.sort(Registry.keys(reg, h)) == left
      peer_call(ctx.p1, Process, :exit, [h, :kill])

      eventually(
        fn ->
          Registry.count(reg) == 0 and on(ctx.p1, :count, [reg]) == 0 and
            on(ctx.p2, :count, [reg]) == 0
        end,
        20_000
      )

      # the replicas too: the client named the keys of the dead process, and none was missed
      eventually(fn ->
        Enum.all?([ctx.h1, ctx.h2], fn hn -> GenServer.call({reg, hn}, :stats)[:entries] == 0 end)
      end)
    end

    test "a name freed by a death can be taken at once (a supervisor restarting its child)",
         %{reg: reg} do
      name = {:via, Registry, {reg, :restarted}}

      children = [
        %{id: :a, start: {Agent, :start_link, [fn -> :state end, [name: name]]}}
      ]

      # Five kills, five restarts allowed: one failed registration would be a sixth.
      {:ok, sup} =
        Supervisor.start_link(children, strategy: :one_for_one, max_restarts: 5, max_seconds: 60)

      for _ <- 1..5 do
        old = Registry.whereis_name({reg, :restarted})
        assert is_pid(old)
        Process.exit(old, :kill)

        eventually(fn ->
          new = Registry.whereis_name({reg, :restarted})
          is_pid(new) and new != old
        end)

        assert Process.alive?(sup),
               "the supervisor gave up: the restarted child could not register"
      end

      Supervisor.stop(sup)
    end
  end

  # ------------------------------------------------------------------ via tuples

  describe "via tuples" do
    test "start, call and stop an Agent by name, from another node too", ctx do
      %{reg: reg} = ctx
      name = {:via, Registry, {reg, "agent"}}
      {:ok, apid} = Agent.start_link(fn -> 0 end, name: name)
      assert Agent.get(name, & &1) == 0
      Agent.update(name, &(&1 + 1))
      assert Agent.get(name, & &1) == 1
      assert Agent.start(fn -> 0 end, name: name) == {:error, {:already_started, apid}}
      assert Registry.lookup(reg, "agent") == [{apid, nil}]
      assert Registry.lookup(name) == [{apid, nil}]

      eventually(fn -> peer_call(ctx.p2, Agent, :get, [name, & &1]) == 1 end)
      Agent.stop(apid)
      eventually(fn -> on(ctx.p2, :whereis_name, [{reg, "agent"}]) == :undefined end)
    end

    test "the value given in a 3-tuple via name is registered; send/2 works for both forms",
         %{reg: reg} do
      name = {:via, Registry, {reg, "agent", :value}}
      {:ok, apid} = Agent.start_link(fn -> 0 end, name: name)
      assert Registry.lookup(reg, "agent") == [{apid, :value}]
      assert Registry.whereis_name({reg, "agent", :ignored}) == apid

      assert Registry.send({reg, "agent"}, :hi) == :hi
      assert Registry.send({reg, "agent", :value}, :hi) == :hi

      # A cast through the 3-tuple form reaches the process (Horde drops it).
      assert Agent.cast(name, &(&1 + 1)) == :ok
      assert Agent.get(name, & &1) == 1
    end

    test "send/2 to a missing name or registry raises ArgumentError", %{reg: reg} do
      assert_raise ArgumentError, fn -> Registry.send({reg, "nobody"}, :hi) end
      assert_raise ArgumentError, fn -> Registry.send({:no_such_registry, "x"}, :hi) end

      assert_raise ArgumentError, ~r/unknown registry: :no_such_registry/, fn ->
        Registry.lookup(:no_such_registry, "x")
      end
    end

    test "a C process registered inside hordec is called by name from every BEAM node", ctx do
      %{reg: reg, h1: h1} = ctx

      # registry_demo: a C process that registers itself through the C API (include/hordec/hc_registry.h)
      assert {:ok, cp} = ctl(h1, {:registry_demo, reg, :c_service})
      name = {:via, Registry, {reg, :c_service}}
      assert Registry.lookup(reg, :c_service) == [{cp, {:hordec_demo, h1}}]
      assert GenServer.call(name, {:echo, "from the runner"}) == "from the runner"
      eventually(fn -> peer_call(ctx.p2, GenServer, :call, [name, :ping]) == :pong end)
      assert Registry.register(reg, :c_service, :mine) == {:error, {:already_registered, cp}}

      assert GenServer.call(cp, :stop) == :ok
      eventually(fn -> Registry.whereis_name({reg, :c_service}) == :undefined end)
      eventually(fn -> on(ctx.p2, :lookup, [reg, :c_service]) == [] end)
    end

    test "unregister_name/1 unregisters", %{reg: reg} do
      assert Registry.register_name({reg, :me}, self()) == :yes
      assert Registry.register_name({reg, :me}, self()) == :no
      assert Registry.whereis_name({reg, :me}) == self()
      assert Registry.unregister_name({reg, :me}) == :ok
      assert Registry.whereis_name({reg, :me}) == :undefined
    end
  end

  # ------------------------------------------------------------------ reads

  describe "reads" do
    test "keys/2", ctx do
      %{reg: reg} = ctx
      assert Registry.keys(reg, self()) == []
      h = holder(ctx.p1)
      {:ok, _} = hrun(h, :register, [reg, :a, 1])
      {:ok, _} = hrun(h, :register, [reg, :b, 2])
      eventually(fn -> Enum.sort(Registry.keys(reg, h)) == [:a, :b] end)
      eventually(fn -> Enum.sort(on(ctx.p2, :keys, [reg, h])) == [:a, :b] end)
    end

    test "values/3", %{reg: reg} do
      {:ok, _} = Registry.register(reg, :a, 1)
      assert Registry.values(reg, :a, self()) == [1]
      assert Registry.values(reg, :a, spawn(fn -> :ok end)) == []
      assert Registry.values(reg, :missing, self()) == []
    end

    test "lookup/2 and lookup/1", %{reg: reg} do
      assert Registry.lookup(reg, "foo") == []
      {:ok, _} = Registry.register(reg, "foo", "foo")
      assert Registry.lookup(reg, "foo") == [{self(), "foo"}]
      assert Registry.lookup({:via, Registry, {reg, "foo"}}) == [{self(), "foo"}]
      assert Registry.lookup({:via, Registry, {reg, "foo", :v}}) == [{self(), "foo"}]
    end

    test "match/4 and count_match/4", %{reg: reg} do
      value = {1, :atom, 1}
      {:ok, _} = Registry.register(reg, "hello", value)
      assert Registry.match(reg, "hello", {1, :_, :_}) == [{self(), value}]
      assert Registry.match(reg, "hello", {1.0, :_, :_}) == []
      assert Registry.match(reg, "hello", {:_, :atom, :_}) == [{self(), value}]
      assert Registry.match(reg, "hello", {:"$1", :_, :"$1"}) == [{self(), value}]
      assert Registry.match(reg, "hello", :_) == [{self(), value}]
      assert Registry.match(reg, :_, :_) == []
      assert Registry.match(reg, "hello", {:_, :_, :"$1"}, [{:>, :"$1", 0}]) == [{self(), value}]
      assert Registry.match(reg, "hello", {:_, :_, :"$1"}, [{:>, :"$1", 1}]) == []
      assert Registry.count_match(reg, "hello", {:_, :_, :"$1"}, [{:>, :"$1", 0}]) == 1
      assert Registry.count_match(reg, "hello", %{}) == 0

      {:ok, _} = Registry.register(reg, "kw", a: 1, b: 2)
      assert Registry.count_match(reg, "kw", a: :_, b: 2) == 1
      assert Registry.count_match(reg, "kw", a: :_, b: 3) == 0
      assert_raise ArgumentError, fn -> Registry.match(reg, "hello", :_, [{:bad_guard}]) end
    end

    test "count/1", %{reg: reg} do
      assert Registry.count(reg) == 0
      {:ok, _} = Registry.register(reg, "hello", :value)
      {:ok, _} = Registry.register(reg, "world", :value)
      assert Registry.count(reg) == 2
      assert_raise ArgumentError, fn -> Registry.count(:no_such_registry) end
    end

    test "dispatch/3 with a fun and an mfa", %{reg: reg} do
      {:ok, _} = Registry.register(reg, "hello", :value)
      me = self()

      assert Registry.dispatch(reg, "hello", fn entries -> send(me, {:fun, entries}) end) == :ok
      assert_received {:fun, [{^me, :value}]}
      assert Registry.dispatch(reg, "hello", {__MODULE__, :forward, [me]}) == :ok
      assert_received {:dispatched, [{^me, :value}]}
      assert Registry.dispatch(reg, "missing", fn _ -> send(me, :called) end) == :ok
      refute_received :called
    end

    test "select/2 and count_select/2", ctx do
      %{reg: reg} = ctx
      assert Registry.select(reg, [{{:"$1", :"$2", :"$3"}, [], [{{:"$1", :"$2", :"$3"}}]}]) == []

      h = holder(ctx.p2)
      {:ok, _} = hrun(h, :register, [reg, "hello", nil])
      {:ok, _} = Registry.register(reg, "world", :value)
      eventually(fn -> Registry.count(reg) == 2 end)

      all = Registry.select(reg, [{{:"$1", :"$2", :"$3"}, [], [{{:"$1", :"$2", :"$3"}}]}])
      assert Enum.sort(all) == Enum.sort([{"hello", h, nil}, {"world", self(), :value}])
      # :"$_" is the entry itself
      assert Registry.select(reg, [{{"world", :_, :_}, [], [:"$_"]}]) == [
               {"world", self(), :value}
             ]

      {:ok, _} = Registry.register(reg, "nested", {:a, {:b, %{c: 1, d: 2}}})

      assert Registry.select(reg, [{{:"$1", :_, {:a, {:b, %{c: :"$2"}}}}, [], [{{:"$1", :"$2"}}]}]) ==
               [{"nested", 1}]

      # repeated variables, literal pid, guards, several clauses
      assert Registry.select(reg, [{{:_, self(), :"$1"}, [{:is_atom, :"$1"}], [:"$1"]}]) == [
               :value
             ]

      assert Registry.select(reg, [{{"world", :_, :_}, [], [1]}, {{"hello", :_, :_}, [], [2]}])
             |> Enum.sort() == [1, 2]

      assert Registry.count_select(reg, [{{:_, :_, :_}, [], [true]}]) == 3
      assert Registry.count_select(reg, [{{:_, :_, :"$1"}, [{:is_atom, :"$1"}], [true]}]) == 2
      # clustered: p1 sees both nodes' entries
      eventually(fn ->
        length(on(ctx.p1, :select, [reg, [{{:"$1", :_, :_}, [], [:"$1"]}]])) == 3
      end)
    end

    test "select/2 raises on a spec of the wrong shape", %{reg: reg} do
      for bad <- [
            [{:_, [], [:"$_"]}],
            [{{:_, :_}, [], [true]}],
            [{{:_, :_, :_}, :not_a_list, [true]}],
            :not_a_list
          ] do
        assert_raise ArgumentError,
                     ~r/invalid match specification in HordeC.Registry.select/,
                     fn ->
                       Registry.select(reg, bad)
                     end
      end

      assert_raise ArgumentError, ~r/count_select/, fn ->
        Registry.count_select(reg, [{:_, [], []}])
      end
    end
  end

  # ------------------------------------------------------------------ memory

  describe "memory" do
    # The issue's target: the BEAM client's ETS costs at most 250 B per entry (Elixir's Registry:
    # 258 B, Horde: 1.2-2.0 KB), for this node's processes and for other nodes'.
    test "ETS per entry, local and remote, is at most 250 B", ctx do
      %{reg: reg} = ctx
      n = 3_000
      tables = [reg, :"#{reg}.Pids", :"#{reg}.Info"]

      bytes = fn ->
        Enum.sum(for t <- tables, do: :ets.info(t, :memory)) * :erlang.system_info(:wordsize)
      end

      b0 = bytes.()
      local = H.register_many(reg, :local, n)
      b1 = bytes.()
      remote = peer_call(ctx.p1, H, :register_many, [reg, :remote, n], 60_000)
      eventually(fn -> Registry.count(reg) == 2 * n end, 20_000)
      b2 = bytes.()

      per_local = (b1 - b0) / n
      per_remote = (b2 - b1) / n

      IO.puts(
        "\nclient ETS per entry: #{Float.round(per_local, 1)} B local, #{Float.round(per_remote, 1)} B remote"
      )

      assert per_local <= 250
      assert per_remote <= 250
      H.release(local)
      peer_call(ctx.p1, H, :release, [remote])
      eventually(fn -> Registry.count(reg) == 0 end, 20_000)
    end
  end

  # ------------------------------------------------------------------ meta

  describe "meta" do
    test "put, get, delete; replicated to every node", ctx do
      %{reg: reg} = ctx
      assert Registry.meta(reg, :custom) == :error
      assert Registry.put_meta(reg, :custom, "value") == :ok
      assert Registry.meta(reg, :custom) == {:ok, "value"}
      assert Registry.put_meta(reg, {:tuple, :key}, 1) == :ok
      assert Registry.meta(reg, {:tuple, :key}) == {:ok, 1}
      eventually(fn -> on(ctx.p2, :meta, [reg, :custom]) == {:ok, "value"} end)

      assert on(ctx.p2, :delete_meta, [reg, :custom]) == :ok
      assert on(ctx.p2, :meta, [reg, :custom]) == :error
      eventually(fn -> Registry.meta(reg, :custom) == :error end)
      assert_raise FunctionClauseError, fn -> Registry.put_meta(reg, "string key", 1) end
    end
  end

  # ------------------------------------------------------------------ listeners

  describe "listeners" do
    @describetag reg_opts: [listeners: [:reg_test_listener]]

    setup do
      Process.register(self(), :reg_test_listener)
      :ok
    end

    test "get :register and :unregister events, local and remote", ctx do
      %{reg: reg} = ctx
      me = self()
      {:ok, _} = Registry.register(reg, :local, :v)
      assert_receive {:register, ^reg, :local, ^me, :v}
      :ok = Registry.unregister(reg, :local)
      assert_receive {:unregister, ^reg, :local, ^me}

      h = holder(ctx.p2)
      {:ok, _} = hrun(h, :register, [reg, :remote, :rv])
      assert_receive {:register, ^reg, :remote, ^h, :rv}, @converge
      send(h, {:stop, :normal})
      assert_receive {:unregister, ^reg, :remote, ^h}, @converge
    end
  end

  test "a client that attaches to a big registry mirrors it exactly, writes during its snapshot included",
       ctx do
    # More than 4096 names: the replica sends the snapshot a slice at a time (docs/hardening.md), and the
    # writes made meanwhile reach the new client after its last slice.
    %{reg: reg, p1: p1} = ctx
    first = H.register_many(reg, :big, 6_000)
    eventually(fn -> peer_call(p1, Registry, :count, [reg]) == 6_000 end, 30_000)
    :ok = peer_call(p1, H, :stop_registry, [reg])

    attach =
      Task.async(fn ->
        peer_call(
          p1,
          H,
          :start_registry,
          [[name: reg, keys: :unique, hordec: [ctx.h2, ctx.h1]]],
          60_000
        )
      end)

    more = H.register_many(reg, :more, 300)
    {gone, kept} = Enum.split(first, 300)
    H.release(gone)
    assert {:ok, _} = Task.await(attach, 60_000)

    eventually(fn -> peer_call(p1, Registry, :count, [reg]) == 6_000 end, 30_000)
    assert peer_call(p1, Registry, :lookup, [reg, {:big, 1}]) == []
    assert [{_, 300}] = peer_call(p1, Registry, :lookup, [reg, {:more, 300}])
    assert [{_, 6_000}] = peer_call(p1, Registry, :lookup, [reg, {:big, 6_000}])

    assert Enum.sort(peer_call(p1, Registry, :select, [reg, [{{:"$1", :_, :_}, [], [:"$1"]}]])) ==
             Enum.sort(Registry.select(reg, [{{:"$1", :_, :_}, [], [:"$1"]}]))

    H.release(more ++ kept)
  end
end
