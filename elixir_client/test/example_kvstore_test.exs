defmodule HordeC.ExampleKvstoreTest do
  @moduledoc """
  The C example `examples/kvstore` (a key-value store with expiry written against the
  installed libhordec and its public headers only), called from Elixir with `GenServer.call`;
  and, started with `--supervisor NAME`, hosting a replica of a `HordeC.DynamicSupervisor` next
  to a real hordec, which runs the example's own C workers (`"counter"`) placed on it, restarts
  them, and hands them over to the hordec node when the program is stopped with SIGTERM.

  The binary comes from `HORDEC_EXAMPLE_BIN`: one path, or several separated by `:` (for
  example the CMake and the pkg-config builds, as `scripts/build_examples.sh` prints them);
  the same scenario runs against each. Without the variable the test is skipped.
  """
  use HordeC.InteropCase, async: true

  alias HordeC.{Cluster, DynamicSupervisor}
  alias HordeC.DynamicSupervisor.Member

  @bins (System.get_env("HORDEC_EXAMPLE_BIN") || "")
        |> String.split(":", trim: true)
        |> Enum.map(&Path.expand/1)

  if @bins == [] do
    @moduletag skip:
                 "HORDEC_EXAMPLE_BIN is not set: build the example with scripts/build_examples.sh " <>
                   "and set it to the kvstore binary it prints"
  end

  @ready_timeout 15_000

  test "kvstore: put/get/delete/keys, expiry by its process timers, bad requests" do
    for bin <- @bins do
      kv = start_kvstore(bin)

      try do
        scenario(kv)
      rescue
        e in [ExUnit.AssertionError] ->
          flunk("#{bin}: #{Exception.message(e)}\nkvstore stderr:\n#{File.read!(kv.log)}")
      end

      # SIGTERM: the runtime stops and frees everything, the process exits 0.
      signal(kv.os_pid, "TERM")
      assert_receive {port, {:exit_status, 0}} when port == kv.port, 10_000
    end
  end

  # The example's own C worker type under HordeC.DynamicSupervisor, next to a real hordec. The
  # supervisor's members: the replicas of a hordec and of copies of the example program (each
  # started with --supervisor), and this runner (a BEAM member). A C worker goes only to a replica
  # whose runtime has its type: "counter" to the examples, "echo" to the hordec.
  test "kvstore --supervisor: its counters are placed, called, restarted and handed over on SIGTERM" do
    sup = :"kvsup_#{System.unique_integer([:positive])}"
    flag = ["--supervisor", Atom.to_string(sup)]
    h = start_hordec(args: flag)
    # Three copies of the program (of both builds when there are two): only the first is a member
    # at first; the others join later.
    kvs = for bin <- Enum.take(Stream.cycle(@bins), 3), do: start_kvstore(bin, flag)

    try do
      supervisor_scenario(sup, h, kvs)
    rescue
      e in [ExUnit.AssertionError] ->
        logs = for kv <- kvs, do: "--- #{kv.node} (#{kv.bin}):\n#{File.read!(kv.log)}"

        flunk("""
        #{Exception.message(e)}
        hordec #{h.node}:
        #{log(h)}
        #{Enum.join(logs, "\n")}
        """)
    end
  end

  @counters 12

  defp supervisor_scenario(sup, h, [kv1, kv2, kv3]) do
    # The program has no `hordec` control process: the client attaches to its replica directly.
    start_supervised!(
      {DynamicSupervisor, name: sup, strategy: :one_for_one, hordec: [kv1.node, h.node]},
      id: sup
    )

    assert HordeC.Attachment.replica(sup) == {sup, kv1.node}
    members = Enum.sort([{sup, kv1.node}, {sup, h.node}, {sup, node()}])
    eventually(fn -> alive_members(sup) == members end)

    # Counters go to the example (the only member with the type), echo workers to the hordec.
    counter = {HordeC.CWorker, type: "counter", arg: 5}

    pids =
      for _ <- 1..@counters do
        assert {:ok, pid} = DynamicSupervisor.start_child(sup, counter)
        pid
      end

    assert Enum.all?(pids, &(node(&1) == kv1.node))

    assert {:ok, echo} =
             DynamicSupervisor.start_child(sup, {HordeC.CWorker, type: "echo", arg: 1})

    assert node(echo) == h.node
    assert Enum.sort(child_pids(sup)) == Enum.sort([echo | pids])

    assert DynamicSupervisor.count_children(sup) ==
             %{
               specs: @counters + 1,
               active: @counters + 1,
               supervisors: 0,
               workers: @counters + 1
             }

    # They are the example's workers: init(5), incr, get.
    [first | _] = pids
    assert GenServer.call(first, :get) == 5
    assert GenServer.call(first, :incr) == 6
    assert GenServer.call(first, :incr) == 7
    assert GenServer.call(first, :get) == 7
    assert GenServer.call(first, :nope) == {:error, :badarg}
    assert Enum.map(pids, &GenServer.call(&1, :get)) == [7 | List.duplicate(5, @counters - 1)]

    # A start the example's init refuses, and a type no member has: errors, nothing left behind.
    assert DynamicSupervisor.start_child(sup, {HordeC.CWorker, type: "counter", arg: :x}) ==
             {:error, {:not_an_integer, :x}}

    assert DynamicSupervisor.start_child(sup, {HordeC.CWorker, type: "nope"}) ==
             {:error, {:unknown_worker_type, "nope"}}

    assert length(child_pids(sup)) == @counters + 1

    # Killed: a permanent child is restarted by its member, with a new pid and a fresh state.
    ref = Process.monitor(first)
    Process.exit(first, :kill)
    assert_receive {:DOWN, ^ref, :process, ^first, :killed}, 5_000

    restarted =
      eventually(fn ->
        case child_pids(sup) -- [echo | pids] do
          [new] -> new
          _ -> nil
        end
      end)

    assert node(restarted) == kv1.node
    assert GenServer.call(restarted, :get) == 5
    counters = (pids -- [first]) ++ [restarted]
    assert Enum.sort(child_pids(sup)) == Enum.sort([echo | counters])
    assert Enum.map(counters, &GenServer.call(&1, :incr)) == List.duplicate(6, @counters)

    # A second copy of the program joins: running children stay where they are (passive).
    with_kv2 = Enum.sort([{sup, kv2.node} | members])
    assert Cluster.set_members(sup, with_kv2) == :ok
    eventually(fn -> alive_members(sup) == with_kv2 end)
    assert Enum.sort(child_pids(sup)) == Enum.sort([echo | counters])

    # SIGTERM to the first: it hands its counters over before it exits (status 0); the other copy
    # starts them again from their child specs (arg 5), each once. This member, attached to the
    # first, fails over to the hordec.
    stop_kvstore(kv1)
    moved = eventually(fn -> counters_on(sup, echo, kv2.node) end, 10_000)
    assert HordeC.Attachment.replica(sup) == {sup, h.node}
    assert Enum.map(moved, &GenServer.call(&1, :get)) == List.duplicate(5, @counters)
    assert GenServer.call(echo, {:echo, :still_here}) == :still_here

    # SIGTERM to the second too: no member runs "counter" now. Nothing is lost: the records wait,
    # handed off (:restarting), and new counters cannot start.
    stop_kvstore(kv2)
    eventually(fn -> restarting(sup) == @counters and child_pids(sup) == [echo] end, 10_000)

    assert DynamicSupervisor.start_child(sup, counter) ==
             {:error, {:unknown_worker_type, "counter"}}

    assert DynamicSupervisor.count_children(sup).specs == @counters + 1

    # A third copy joins: it adopts them.
    assert Cluster.set_members(sup, [{sup, kv3.node} | Cluster.members(sup)]) == :ok
    adopted = eventually(fn -> counters_on(sup, echo, kv3.node) end, 10_000)
    assert Enum.map(adopted, &GenServer.call(&1, :incr)) == List.duplicate(6, @counters)
    stop_supervised!(sup)
  end

  # SIGTERM, and the program exits 0 (after its replica handed its workers over).
  defp stop_kvstore(kv) do
    signal(kv.os_pid, "TERM")
    assert_receive {port, {:exit_status, 0}} when port == kv.port, 10_000
  end

  # The counters, when all @counters run on `node` (and nothing else changed): else nil.
  defp counters_on(sup, echo, node) do
    case child_pids(sup) -- [echo] do
      kids when length(kids) == @counters ->
        restarting(sup) == 0 and Enum.all?(kids, &(node(&1) == node)) and
          Enum.uniq(kids) == kids and kids

      _ ->
        nil
    end
  end

  defp child_pids(sup),
    do: for({_, pid, _, _} <- DynamicSupervisor.which_children(sup), is_pid(pid), do: pid)

  defp restarting(sup),
    do: Enum.count(DynamicSupervisor.which_children(sup), &(elem(&1, 1) == :restarting))

  defp alive_members(sup) do
    for(%Member{status: :alive, name: m} <- DynamicSupervisor.members_info(sup), do: m)
    |> Enum.sort()
  end

  defp scenario(kv) do
    call = fn req -> GenServer.call({:kvstore, kv.node}, req, 5_000) end

    # --connect: the C node dialled the runner itself (a C node is a hidden peer).
    eventually(fn -> kv.node in Node.list(:hidden) end)

    assert call.(:keys) == []
    assert call.({:put, "a", %{any: ["term", 1.5]}, :infinity}) == :ok
    assert call.({:put, {:key, 2}, <<1, 2, 3>>, :infinity}) == :ok
    assert call.({:get, "a"}) == {:ok, %{any: ["term", 1.5]}}
    assert call.({:get, {:key, 2}}) == {:ok, <<1, 2, 3>>}
    assert call.({:get, "nope"}) == :not_found
    assert Enum.sort(call.(:keys)) == Enum.sort(["a", {:key, 2}])
    # overwrite
    assert call.({:put, "a", 2, :infinity}) == :ok
    assert call.({:get, "a"}) == {:ok, 2}
    assert call.({:delete, {:key, 2}}) == :ok
    assert call.({:delete, {:key, 2}}) == :ok
    assert call.({:get, {:key, 2}}) == :not_found
    assert call.(:keys) == ["a"]

    # Expiry, observed by its event: subscribers get {:kvstore_expired, key}.
    assert call.(:subscribe) == :ok
    # "short" expires first, unless the put with :infinity cancelled its timer, as it must.
    assert call.({:put, "short", 1, 200}) == :ok
    assert call.({:put, "short", 1, :infinity}) == :ok
    assert call.({:put, "ttl", :v, 500}) == :ok
    assert call.({:get, "ttl"}) == {:ok, :v}
    assert_receive {:kvstore_expired, "ttl"}, 10_000
    refute_received {:kvstore_expired, "short"}
    assert call.({:get, "ttl"}) == :not_found
    assert call.({:get, "short"}) == {:ok, 1}
    assert Enum.sort(call.(:keys)) == ["a", "short"]

    # Bad requests get {:error, :badarg} and change nothing.
    for bad <- [
          {:put, "k", 1, 0},
          {:put, "k", 1, -1},
          {:put, "k", 1, :never},
          {:put, "k", 1},
          {:get},
          {:get, "a", "b"},
          {:delete},
          :nope,
          "not a request",
          {"put", "k", 1, 100},
          [:keys]
        ] do
      assert call.(bad) == {:error, :badarg}, "request #{inspect(bad)}"
    end

    assert Enum.sort(call.(:keys)) == ["a", "short"]
    assert call.({:get, "k"}) == :not_found
  end

  # Started the way HordeC.TestCluster starts hordec: through /bin/sh with stderr appended to a
  # log file, stdout on a port that delivers the ready line. --quit-on-eof makes the program exit
  # when the port closes, and on_exit kills it in any case.
  defp start_kvstore(bin, extra_args \\ []) do
    assert File.regular?(bin), "HORDEC_EXAMPLE_BIN names #{bin}, which does not exist"
    name = unique_name("kv")
    node_str = "#{name}@127.0.0.1"
    log = Path.join(System.tmp_dir!(), "#{name}.log")

    args = [
      "--name",
      node_str,
      "--cookie",
      Atom.to_string(cookie()),
      "--connect",
      Atom.to_string(node()),
      "--quit-on-eof"
      | extra_args
    ]

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        :exit_status,
        :use_stdio,
        :hide,
        {:line, 16_384},
        args: ["-c", ~S(exec "$0" "$@" 2>>"$KVSTORE_STDERR"), bin | args],
        env: [{~c"KVSTORE_STDERR", String.to_charlist(log)}]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    on_exit(fn ->
      if os_alive?(os_pid), do: System.cmd("kill", ["-9", Integer.to_string(os_pid)])
      File.rm(log)
    end)

    receive do
      {^port, {:data, {:eol, "kvstore ready node=" <> rest}}} ->
        assert [^node_str, _port] = String.split(rest, " port=")

      {^port, {:data, other}} ->
        flunk("unexpected line from #{bin}: #{inspect(other)}; stderr:\n#{File.read!(log)}")

      {^port, {:exit_status, status}} ->
        flunk(
          "#{bin} exited with status #{status} before its ready line; stderr:\n#{File.read!(log)}"
        )
    after
      @ready_timeout -> flunk("no ready line from #{bin}; stderr:\n#{File.read!(log)}")
    end

    %{node: String.to_atom(node_str), port: port, os_pid: os_pid, log: log, bin: bin}
  end
end
