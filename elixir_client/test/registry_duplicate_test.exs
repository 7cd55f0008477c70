defmodule HordeC.RegistryDuplicateTest do
  @moduledoc """
  `HordeC.Registry` with `keys: :duplicate`: the behaviours of Elixir's own `Registry` tests for
  duplicate registries that apply to a distributed registry, on two hordec nodes, this runner and
  a peer. (One deliberate difference: a process holds at most one entry per key.)
  """
  use HordeC.InteropCase, async: false

  alias HordeC.Registry
  alias HordeC.Test.RegistryHelpers, as: H

  @converge 5_000

  setup_all do
    [h1, h2] = start_hordecs(2)
    %{h1: h1, h2: h2, p1: start_peer()}
  end

  setup ctx do
    reg = :"dreg_#{System.unique_integer([:positive])}"
    opts = [name: reg, keys: :duplicate] ++ Map.get(ctx, :reg_opts, [])
    start_supervised!({Registry, opts ++ [hordec: [ctx.h1.node, ctx.h2.node]]})

    assert {:ok, _} =
             peer_call(ctx.p1, H, :start_registry, [opts ++ [hordec: [ctx.h2.node, ctx.h1.node]]])

    on_exit(fn -> stop_on(ctx.p1, reg) end)
    %{reg: reg}
  end

  def forward(entries, to), do: send(to, {:dispatched, entries})

  # Stops the registry on a peer after a test, whatever state the peer is in.
  defp stop_on(peer, reg) do
    peer_call(peer, H, :stop_registry, [reg])
  catch
    _, _ -> :ok
  end

  defp on(fun, args, ctx), do: peer_call(ctx.p1, Registry, fun, args)
  defp holder(ctx, opts \\ []), do: peer_call(ctx.p1, H, :holder, [self(), opts])
  defp hrun(holder, fun, args), do: H.run(holder, Registry, fun, args)

  defp sorted(list), do: Enum.sort(list)

  test "has duplicate registrations, across processes and nodes", %{reg: reg} = ctx do
    {:ok, _} = Registry.register(reg, "hello", :value)
    assert Registry.keys(reg, self()) == ["hello"]
    # one entry per (key, process): the second registration of the same key is refused
    assert Registry.register(reg, "hello", :other) == {:error, {:already_registered, self()}}

    h = holder(ctx)
    assert {:ok, _} = hrun(h, :register, [reg, "hello", :remote])
    assert Registry.keys(reg, self()) == ["hello"]

    eventually(fn ->
      sorted(Registry.lookup(reg, "hello")) == sorted([{self(), :value}, {h, :remote}])
    end)

    eventually(fn ->
      sorted(on(:lookup, [reg, "hello"], ctx)) == sorted([{self(), :value}, {h, :remote}])
    end)

    assert Registry.keys(reg, h) == ["hello"]
    assert Registry.count(reg) == 2
  end

  test "many processes under one key (pubsub): dispatch reaches them all", %{reg: reg} = ctx do
    me = self()
    remote = for _ <- 1..20, do: holder(ctx)
    for h <- remote, do: {:ok, _} = hrun(h, :register, [reg, :topic, :sub])
    local = for _ <- 1..5, do: H.holder(me)
    for h <- local, do: {:ok, _} = H.run(h, Registry, :register, [reg, :topic, :sub])
    all = sorted(remote ++ local)
    eventually(fn -> sorted(for {pid, :sub} <- Registry.lookup(reg, :topic), do: pid) == all end)

    assert Registry.dispatch(reg, :topic, fn entries ->
             for {pid, _} <- entries, do: send(pid, :broadcast)
           end) == :ok

    for pid <- all, do: assert_receive({:holder_msg, ^pid, :broadcast}, @converge)
    assert Registry.dispatch(reg, :topic, {__MODULE__, :forward, [me]}) == :ok
    assert_receive {:dispatched, entries}
    assert length(entries) == 25
    assert Registry.count_match(reg, :topic, :sub) == 25
  end

  test "keys compare by match: 1 and 1.0 are different keys", %{reg: reg} do
    {:ok, _} = Registry.register(reg, 1, :int)
    {:ok, _} = Registry.register(reg, 1.0, :float)
    assert Registry.lookup(reg, 1) == [{self(), :int}]
    assert Registry.lookup(reg, 1.0) == [{self(), :float}]
    assert Enum.sort(Registry.keys(reg, self())) == Enum.sort([1, 1.0])
    :ok = Registry.unregister(reg, 1)
    assert Registry.lookup(reg, 1.0) == [{self(), :float}]
    assert Registry.keys(reg, self()) == [1.0]
    {:ok, _} = Registry.register(reg, 1, :int)
    :ok = Registry.unregister(reg, 1.0)
    assert Registry.keys(reg, self()) == [1]
    assert Registry.register(reg, 1, :again) == {:error, {:already_registered, self()}}
    {:ok, _} = Registry.register(reg, 1.0, :float)
    assert Registry.lookup(reg, 1.0) == [{self(), :float}]
  end

  test "unregister removes only the caller's entries", %{reg: reg} = ctx do
    h = holder(ctx)
    {:ok, _} = hrun(h, :register, [reg, "hello", :remote])
    {:ok, _} = Registry.register(reg, "hello", :value)
    {:ok, _} = Registry.register(reg, "world", :value)
    assert Registry.unregister(reg, "hello") == :ok
    assert Registry.keys(reg, self()) == ["world"]
    eventually(fn -> Registry.lookup(reg, "hello") == [{h, :remote}] end)
    eventually(fn -> on(:lookup, [reg, "hello"], ctx) == [{h, :remote}] end)
    assert Registry.unregister(reg, "missing") == :ok
  end

  test "tricky keys (match-pattern atoms) are keys like any other", %{reg: reg} do
    for key <- [:_, :"$1", {:"$1", :_}, ["$2"]] do
      {:ok, _} = Registry.register(reg, key, {:v, key})
    end

    {:ok, _} = Registry.register(reg, "hello", "world")
    assert Registry.lookup(reg, :_) == [{self(), {:v, :_}}]
    assert Registry.lookup(reg, {:"$1", :_}) == [{self(), {:v, {:"$1", :_}}}]
    assert Registry.count(reg) == 5
    :ok = Registry.unregister(reg, :_)
    assert Registry.lookup(reg, :_) == []
    assert Registry.lookup(reg, "hello") == [{self(), "world"}]
    :ok = Registry.unregister_match(reg, {:"$1", :_}, :_)
    assert Registry.lookup(reg, {:"$1", :_}) == []
    assert Registry.count(reg) == 3
  end

  test "unregister_match/4, match/4, count_match/4 with patterns and guards", %{reg: reg} = ctx do
    h = holder(ctx)
    {:ok, _} = hrun(h, :register, [reg, "hello", {1, :remote}])
    {:ok, _} = Registry.register(reg, "hello", {2, :local})
    eventually(fn -> Registry.count_match(reg, "hello", :_) == 2 end)

    assert Registry.match(reg, "hello", {2, :_}) == [{self(), {2, :local}}]
    assert Registry.match(reg, "hello", {:"$1", :_}, [{:<, :"$1", 2}]) == [{h, {1, :remote}}]
    assert Registry.count_match(reg, "hello", {:"$1", :_}, [{:>, :"$1", 0}]) == 2
    assert Registry.count_match(reg, "hello", {:_, :other}) == 0

    # only the caller's own entries are unregistered, and only if they match
    assert Registry.unregister_match(reg, "hello", {1, :_}) == :ok
    assert Registry.count_match(reg, "hello", :_) == 2
    assert Registry.unregister_match(reg, "hello", {:"$1", :_}, [{:==, :"$1", 2}]) == :ok
    assert Registry.lookup(reg, "hello") == [{h, {1, :remote}}]
  end

  test "values/3, select/2, count_select/2", %{reg: reg} = ctx do
    h = holder(ctx)
    {:ok, _} = hrun(h, :register, [reg, :k, :remote])
    {:ok, _} = Registry.register(reg, :k, :local)
    {:ok, _} = Registry.register(reg, :other, 7)
    eventually(fn -> Registry.count(reg) == 3 end)

    assert Registry.values(reg, :k, self()) == [:local]
    assert Registry.values(reg, :k, h) == [:remote]

    assert sorted(Registry.select(reg, [{{:k, :"$1", :"$2"}, [], [{{:"$1", :"$2"}}]}])) ==
             sorted([{self(), :local}, {h, :remote}])

    assert Registry.count_select(reg, [{{:_, :_, :"$1"}, [{:is_atom, :"$1"}], [true]}]) == 2
  end

  test "update_value/3 and via tuples are not supported", %{reg: reg} do
    {:ok, _} = Registry.register(reg, :k, 1)

    assert_raise ArgumentError, ~r/not supported for duplicate registries/, fn ->
      Registry.update_value(reg, :k, &(&1 + 1))
    end

    assert_raise ArgumentError, ~r/:via is not supported for duplicate registries/, fn ->
      Agent.start(fn -> 0 end, name: {:via, Registry, {reg, :agent}})
    end
  end

  test "a process's death removes only its entries, everywhere", %{reg: reg} = ctx do
    h = holder(ctx)
    {:ok, _} = hrun(h, :register, [reg, :k, :remote])
    {:ok, _} = hrun(h, :register, [reg, :k2, :remote])
    {:ok, _} = Registry.register(reg, :k, :local)
    eventually(fn -> Registry.count(reg) == 3 end)
    send(h, {:stop, :normal})
    eventually(fn -> Registry.lookup(reg, :k) == [{self(), :local}] end)
    eventually(fn -> on(:lookup, [reg, :k], ctx) == [{self(), :local}] end)
    assert Registry.count(reg) == 1
    assert Registry.keys(reg, h) == []
  end

  test "a partition never conflicts: both sides' registrations of a key stay",
       %{reg: reg} = ctx do
    %{h1: h1, h2: h2} = ctx
    assert ctl(h1, {:block_peers, [h2.node]}) == :ok
    assert ctl(h2, {:block_peers, [h1.node]}) == :ok
    eventually(fn -> h2.node not in peers(h1) end)

    h = holder(ctx, trap: true)
    {:ok, _} = hrun(h, :register, [reg, :shared, :p1_side])
    {:ok, _} = Registry.register(reg, :shared, :runner_side)
    assert Registry.lookup(reg, :shared) == [{self(), :runner_side}]

    assert ctl(h1, {:unblock_peers, [h2.node]}) == :ok
    assert ctl(h2, {:unblock_peers, [h1.node]}) == :ok
    both = sorted([{self(), :runner_side}, {h, :p1_side}])
    eventually(fn -> sorted(Registry.lookup(reg, :shared)) == both end, 10_000)
    eventually(fn -> sorted(on(:lookup, [reg, :shared], ctx)) == both end, 10_000)
    refute_received {:holder_exit, ^h, _, _}
  end
end
