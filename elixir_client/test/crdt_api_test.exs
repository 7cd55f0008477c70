defmodule HordeC.CrdtApiTest do
  @moduledoc """
  `HordeC.Crdt`'s conventions, against a real hordec: validated start options, start failures as
  `{:error, reason}` values (the local node not alive, an unreachable C node, a taken name), bad
  arguments as `ArgumentError`, an unreachable replica as an exit (never a MatchError), and the
  per-name client state in ETS.
  """
  use HordeC.InteropCase, async: true

  alias HordeC.Crdt

  setup_all do
    %{h: start_hordec()}
  end

  defp unique(prefix), do: :"#{prefix}_#{System.unique_integer([:positive])}"

  defp attach(h, opts \\ []) do
    name = unique("api")
    # temporary: a test that kills it or its C node must not see it restarted
    pid =
      start_supervised!({Crdt, [name: name, hordec: h.node] ++ opts},
        id: name,
        restart: :temporary
      )

    {name, pid}
  end

  describe "start options" do
    test "unknown, missing and invalid options raise ArgumentError naming them", %{h: h} do
      base = [name: unique("o"), hordec: h.node]

      for {opts, message} <- [
            {base ++ [bogus: 1, other: 2], ~r/unknown options \[:bogus, :other\]/},
            {[hordec: h.node], ~r/the :name option is required/},
            {[name: :x], ~r/the :hordec option is required/},
            {[name: "x", hordec: h.node], ~r/expected :name to be an atom.*got: "x"/},
            {[name: :x, hordec: "h@host"], ~r/expected :hordec to be a node name/},
            {base ++ [replica: 1], ~r/expected :replica to be an atom/},
            {base ++ [on_diffs: fn -> :ok end], ~r/expected :on_diffs to be a 1-arity function/},
            {base ++ [on_diffs: {:m, :f}], ~r/expected :on_diffs/},
            {base ++ [sync_interval: 0],
             ~r/expected :sync_interval to be an integer in 1..60000/},
            {base ++ [max_message_bytes: 100], ~r/expected :max_message_bytes/},
            {base ++ [stream_batch_bytes: :big], ~r/expected :stream_batch_bytes/},
            {base ++ [max_clock_offset: 0], ~r/expected :max_clock_offset/},
            {:not_a_list, ~r/expected options to be a keyword list/}
          ] do
        assert_raise ArgumentError, message, fn -> Crdt.start_link(opts) end
        assert_raise ArgumentError, message, fn -> Crdt.child_spec(opts) end
      end
    end

    test "child_spec/1 names the child after :name", %{h: h} do
      assert %{id: :cs, start: {Crdt, :start_link, [[name: :cs, hordec: node]]}} =
               Crdt.child_spec(name: :cs, hordec: h.node)

      assert node == h.node
    end

    test "creation options reach the replica", %{h: h} do
      {name, _} =
        attach(h,
          sync_interval: 20,
          max_message_bytes: 8_192,
          stream_batch_bytes: 512,
          max_clock_offset: 1_234
        )

      assert %{max_clock_offset_ms: 1_234} = GenServer.call({name, h.node}, :stats)

      assert_raise ArgumentError, ~r/do not fit in one sync message/, fn ->
        Crdt.put(name, :k, :binary.copy("x", 8_192))
      end

      assert Crdt.put(name, :k, :binary.copy("x", 4_096)) == name
    end
  end

  describe "start failures are {:error, reason}" do
    test "an unreachable C node" do
      nobody = :"nobody_#{System.unique_integer([:positive])}@127.0.0.1"

      assert PeerHelpers.start_link_trapping(Crdt, name: unique("u"), hordec: nobody) ==
               {:error, {:cannot_connect, nobody}}
    end

    test "a replica name held by another kind of process on the C node", %{h: h} do
      assert PeerHelpers.start_link_trapping(Crdt,
               name: unique("t"),
               hordec: h.node,
               replica: :hordec
             ) ==
               {:error, :name_taken}
    end

    test "a local node that is not alive: {:error, :not_alive}", %{h: h} do
      p = start_peer(alive: false)
      assert peer_call(p, Node, :alive?, []) == false
      assert {:ok, _} = peer_call(p, :application, :ensure_all_started, [:horde_c])

      assert peer_call(p, PeerHelpers, :start_link_trapping, [Crdt, [name: :m, hordec: h.node]]) ==
               {:error, :not_alive}

      # and the init callback itself says so, rather than crashing on Node.connect's :ignored
      assert peer_call(p, Crdt, :init, [[name: :m, hordec: h.node]]) == {:stop, :not_alive}
    end
  end

  describe "errors of the API functions" do
    test "bad arguments raise ArgumentError naming them", %{h: h} do
      {name, _} = attach(h)

      for {fun, message} <- [
            {fn -> Crdt.get("m", :k) end, ~r/get: expected crdt to be the atom name/},
            {fn -> Crdt.put({:m, h.node}, :k, 1) end, ~r/put: expected crdt to be the atom/},
            {fn -> Crdt.take(name, :k) end, ~r/take: expected keys to be a list, got: :k/},
            {fn -> Crdt.drop(name, %{}) end, ~r/drop: expected keys to be a list/},
            {fn -> Crdt.merge(name, a: 1) end, ~r/merge: expected a map, got: \[a: 1\]/},
            {fn -> Crdt.set_neighbours(name, [:m]) end, ~r/set_neighbours: expected neighbours/},
            {fn -> Crdt.set_neighbours(name, :m) end, ~r/set_neighbours: expected neighbours/},
            {fn -> Crdt.get(name, :k, -5) end, ~r/get: expected timeout to be :infinity or/},
            {fn -> Crdt.to_map(name, :soon) end, ~r/to_map: expected timeout/}
          ] do
        assert_raise ArgumentError, message, fun
      end

      assert Crdt.get(name, :k) == nil, "nothing reached the replica"
    end

    test "a name with no local process exits with :noproc" do
      assert catch_exit(Crdt.get(:no_such_crdt, :k)) == {:noproc, {Crdt, :get, [:no_such_crdt]}}

      assert catch_exit(Crdt.put(:no_such_crdt, :k, 1)) ==
               {:noproc, {Crdt, :put, [:no_such_crdt]}}

      assert catch_exit(Crdt.replica(:no_such_crdt)) ==
               {:noproc, {Crdt, :replica, [:no_such_crdt]}}
    end

    test "a replica stopped on its C node: calls exit as GenServer.call does", %{h: h} do
      {name, _} = attach(h, replica: unique("gone"))
      {replica, _} = Crdt.replica(name)
      assert ctl(h, {:crdt_stop, replica}) == :ok

      for fun <- [
            fn -> Crdt.put(name, :k, 1) end,
            fn -> Crdt.get(name, :k) end,
            fn -> Crdt.set_neighbours(name, []) end,
            fn -> Crdt.to_map(name) end
          ] do
        assert {:noproc, {GenServer, :call, _}} = catch_exit(fun.())
      end
    end

    test "a C node that dies: calls exit, the local process exits {:hordec_down, node}" do
      h = start_hordec()
      {name, pid} = attach(h)
      ref = Process.monitor(pid)
      signal(h, "KILL")
      hnode = h.node
      assert_receive {:DOWN, ^ref, :process, ^pid, {:hordec_down, ^hnode}}, 5_000
      assert catch_exit(Crdt.get(name, :k)) == {:noproc, {Crdt, :get, [name]}}
    end
  end

  describe "per-name state" do
    test "lives in ETS (not persistent_term) and goes away with its process, however it dies",
         %{h: h} do
      {a, pid_a} = attach(h)
      {b, _} = attach(h)
      assert Crdt.replica(a) == {a, h.node}

      refute Enum.any?(:persistent_term.get(), &match?({{Crdt, _}, _}, &1))

      # killed: no terminate/2 runs, the table's owner notices the death
      Process.exit(pid_a, :kill)
      eventually(fn -> catch_exit(Crdt.replica(a)) == {:noproc, {Crdt, :replica, [a]}} end)
      assert Crdt.put(b, :still, :here) == b

      # a stopped one removes its row at once
      stop_supervised!(b)
      assert catch_exit(Crdt.replica(b)) == {:noproc, {Crdt, :replica, [b]}}
    end

    test "a name that restarts keeps working (an old row never removes the new one)", %{h: h} do
      name = unique("again")

      for i <- 1..5 do
        pid = start_supervised!({Crdt, name: name, hordec: h.node}, id: name, restart: :temporary)
        assert Crdt.put(name, :i, i) == name
        ref = Process.monitor(pid)
        Process.exit(pid, :kill)
        assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
      end

      start_supervised!({Crdt, name: name, hordec: h.node}, id: name, restart: :temporary)
      # the old processes' deaths are all processed by now (a call to the table owner is served
      # after every DOWN it received before)
      _ = :sys.get_state(HordeC.Clients)
      assert Crdt.get(name, :i) == 5
    end
  end

  test "on_diffs as {m, f, a} gets the diffs as the last argument", %{h: h} do
    {name, _} = attach(h, on_diffs: {:erlang, :send, [self()]})
    Crdt.put(name, :x, 1)
    assert_receive [{:add, :x, 1}], 5_000
  end
end
