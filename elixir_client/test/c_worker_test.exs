defmodule HordeC.CWorkerTest do
  @moduledoc """
  C workers (`include/hordec/hc_worker.h`) in a real hordec, started with the control
  request `{:start_worker, type, arg}` and used from Elixir as any GenServer: the built-in
  `"echo"` and `"kv"` types, calls and casts, the exit reasons monitors and links see
  (an exit asked for, a crash, `Process.exit/2` with `:kill` or another reason), and
  the errors a start or a call can give.
  """
  use HordeC.InteropCase, async: true

  setup_all do
    %{h: start_hordec()}
  end

  defp start!(h, type, arg) do
    assert {:ok, pid} = ctl(h, {:start_worker, type, arg})
    assert is_pid(pid) and node(pid) == h.node
    pid
  end

  # The worker still answers (Process.alive?/1 only works for local pids).
  defp assert_alive(pid), do: assert(GenServer.call(pid, {:echo, :alive?}, 2_000) == :alive?)

  describe "echo" do
    test "answers {:echo, t} with t and :get_arg with its init argument", %{h: h} do
      arg = %{config: [1, 2.5, "three"], pid: self()}
      pid = start!(h, "echo", arg)
      term = {:hi, "there", [1.5, -2 ** 70], make_ref(), self()}
      assert GenServer.call(pid, {:echo, term}) == term
      assert GenServer.call(pid, :get_arg) == arg
      # two workers of one type are independent
      other = start!(h, "echo", nil)
      assert other != pid
      assert GenServer.call(other, :get_arg) == nil
      assert GenServer.call(pid, :get_arg) == arg
    end

    test "a bad call gets an error reply and the worker keeps running", %{h: h} do
      pid = start!(h, "echo", nil)

      for bad <- [:nope, {:echo}, {:echo, 1, 2}, "echo", [:get_arg], {:exit}, {"echo", 1}] do
        assert GenServer.call(pid, bad) == {:error, {:unknown_call, bad}}, inspect(bad)
      end

      assert_alive(pid)
      # other casts and plain messages are ignored
      GenServer.cast(pid, :whatever)
      send(pid, {:whatever, self()})
      assert_alive(pid)
    end
  end

  describe "kv" do
    test "put/get/delete/size/keys, any terms as keys and values", %{h: h} do
      pid = start!(h, "kv", [])
      call = &GenServer.call(pid, &1)
      assert call.(:size) == 0
      assert call.(:keys) == []
      assert call.({:get, "a"}) == :error
      assert call.({:put, "a", 1}) == :ok
      assert call.({:put, {:key, [2]}, %{nested: ["value", 3.0]}}) == :ok
      assert call.({:put, self(), :me}) == :ok
      assert call.({:get, "a"}) == {:ok, 1}
      assert call.({:get, {:key, [2]}}) == {:ok, %{nested: ["value", 3.0]}}
      assert call.({:get, self()}) == {:ok, :me}
      assert call.(:size) == 3
      assert Enum.sort(call.(:keys)) == Enum.sort(["a", {:key, [2]}, self()])
      # overwrite
      assert call.({:put, "a", :two}) == :ok
      assert call.({:get, "a"}) == {:ok, :two}
      assert call.(:size) == 3
      assert call.({:delete, "a"}) == :ok
      assert call.({:delete, "a"}) == :ok
      assert call.({:get, "a"}) == :error
      assert call.(:size) == 2
      # a bad call changes nothing
      assert call.({:put, "b"}) == {:error, {:unknown_call, {:put, "b"}}}
      assert call.(:size) == 2
    end

    test "init takes a map or a list of pairs; anything else starts empty", %{h: h} do
      from_map = start!(h, "kv", %{"x" => 1, y: [2]})
      assert GenServer.call(from_map, :size) == 2
      assert GenServer.call(from_map, {:get, :y}) == {:ok, [2]}

      from_list = start!(h, "kv", [{1, :one}, :not_a_pair, {2, :two}])
      assert GenServer.call(from_list, :size) == 2
      assert GenServer.call(from_list, {:get, 2}) == {:ok, :two}

      for arg <- [nil, 42, "string", {:a, :b}] do
        pid = start!(h, "kv", arg)
        assert GenServer.call(pid, :size) == 0, inspect(arg)
      end
    end
  end

  describe "exits" do
    test "call {:exit, r}: the caller gets :ok, then monitors see r", %{h: h} do
      for type <- ["echo", "kv"] do
        pid = start!(h, type, nil)
        ref = Process.monitor(pid)
        assert GenServer.call(pid, {:exit, {:shutdown, :bye}}) == :ok
        assert_receive {:DOWN, ^ref, :process, ^pid, {:shutdown, :bye}}, 5_000
        assert {:noproc, _} = catch_exit(GenServer.call(pid, :size, 2_000))
      end
    end

    test "cast and plain message {:exit, r}", %{h: h} do
      pid = start!(h, "echo", nil)
      ref = Process.monitor(pid)
      GenServer.cast(pid, {:exit, :by_cast})
      assert_receive {:DOWN, ^ref, :process, ^pid, :by_cast}, 5_000

      pid = start!(h, "kv", nil)
      ref = Process.monitor(pid)
      send(pid, {:exit, :by_message})
      assert_receive {:DOWN, ^ref, :process, ^pid, :by_message}, 5_000
    end

    test "call :crash: the caller exits with the crash reason, monitors see it", %{h: h} do
      for type <- ["echo", "kv"] do
        pid = start!(h, type, nil)
        ref = Process.monitor(pid)
        assert {{:crash, ^type}, {GenServer, :call, _}} = catch_exit(GenServer.call(pid, :crash))
        assert_receive {:DOWN, ^ref, :process, ^pid, {:crash, ^type}}, 5_000
      end
    end

    test "Process.exit(pid, :kill) kills it with :killed", %{h: h} do
      pid = start!(h, "kv", %{a: 1})
      ref = Process.monitor(pid)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}, 5_000
    end

    test "Process.exit(pid, reason): :normal is ignored, any other reason ends it", %{h: h} do
      pid = start!(h, "echo", nil)
      ref = Process.monitor(pid)
      Process.exit(pid, :normal)
      assert_alive(pid)
      Process.exit(pid, :boom)
      assert_receive {:DOWN, ^ref, :process, ^pid, :boom}, 5_000
    end

    test "links both ways: a linked BEAM process's exit ends the worker, and the worker's exit reaches it",
         %{h: h} do
      # a BEAM process linked to the worker dies: the worker (not trapping exits) dies with its reason
      pid = start!(h, "echo", nil)
      ref = Process.monitor(pid)
      test = self()

      beam =
        spawn(fn ->
          Process.link(pid)
          send(test, :linked)
          receive do: (:die -> exit(:beam_side_died))
        end)

      assert_receive :linked
      # the link is set up before the exit travels (both go over the same connection, in order)
      send(beam, :die)
      assert_receive {:DOWN, ^ref, :process, ^pid, :beam_side_died}, 5_000

      # the worker exits: a linked BEAM process that traps exits receives {:EXIT, pid, reason}
      pid = start!(h, "kv", nil)

      watcher =
        spawn(fn ->
          Process.flag(:trap_exit, true)
          Process.link(pid)
          send(test, :linked)
          receive do: ({:EXIT, ^pid, reason} -> send(test, {:worker_exit, reason}))
        end)

      assert_receive :linked
      assert GenServer.call(pid, {:exit, :worker_side}) == :ok
      assert_receive {:worker_exit, :worker_side}, 5_000
      refute Process.alive?(watcher)
    end

    test "workers that end leave nothing behind", %{h: h} do
      base = info(h).processes
      pids = for i <- 1..200, do: start!(h, Enum.at(["echo", "kv"], rem(i, 2)), %{i => i})
      assert info(h).processes == base + 200

      for {pid, i} <- Enum.with_index(pids),
          do: Process.exit(pid, Enum.at([:kill, :boom], rem(i, 2)))

      eventually(fn -> info(h).processes == base end)
      assert ctl(h, :ping) == :pong
    end
  end

  describe "starting" do
    test "an unknown type: {:error, {:unknown_worker_type, type}}", %{h: h} do
      assert ctl(h, {:start_worker, "nope", nil}) == {:error, {:unknown_worker_type, "nope"}}
      assert ctl(h, {:start_worker, "", 1}) == {:error, {:unknown_worker_type, ""}}
      assert ctl(h, {:start_worker, "echo!", 1}) == {:error, {:unknown_worker_type, "echo!"}}
    end

    test "a malformed start_worker request is an unknown request", %{h: h} do
      for bad <- [
            {:start_worker, :echo, nil},
            {:start_worker, "echo"},
            {:start_worker, 'echo', 1, 2}
          ] do
        assert ctl(h, bad) == {:error, {:unknown_request, bad}}, inspect(bad)
      end

      assert ctl(h, :ping) == :pong
    end

    test "a large argument survives the trip", %{h: h} do
      arg = %{blob: :crypto.strong_rand_bytes(1_000_000), list: Enum.to_list(1..10_000)}
      pid = start!(h, "echo", arg)
      assert GenServer.call(pid, :get_arg, 10_000) == arg
    end
  end
end

defmodule HordeC.CWorkerExampleTest do
  @moduledoc """
  The worker type a program embedding the runtime registers itself: `examples/kvstore`'s
  `"counter"`, started through that program's `{:start_worker, type, arg}` request and called
  from Elixir. The binary comes from `HORDEC_EXAMPLE_BIN` (as in
  `HordeC.ExampleKvstoreTest`); without it, or in a run over TLS, the test is skipped.
  """
  use HordeC.InteropCase, async: true

  @bin (System.get_env("HORDEC_EXAMPLE_BIN") || "")
       |> String.split(":", trim: true)
       |> List.first()

  cond do
    @bin == nil ->
      @moduletag skip:
                   "HORDEC_EXAMPLE_BIN is not set: build the example with scripts/build_examples.sh"

    HordeC.TestCluster.tls?() ->
      # The example speaks plain TCP distribution (it sets no TLS options): over TLS its node
      # is refused, as any plain node is.
      @moduletag skip: "examples/kvstore runs plain TCP distribution; this run is over TLS"

    true ->
      :ok
  end

  test "examples/kvstore's own worker type: counter" do
    kv = start_example(Path.expand(@bin))
    start = &GenServer.call({:kvstore, kv}, {:start_worker, &1, &2})

    assert {:ok, c} = start.("counter", 41)
    assert node(c) == kv
    assert GenServer.call(c, :get) == 41
    assert GenServer.call(c, :incr) == 42
    assert GenServer.call(c, :incr) == 43
    assert GenServer.call(c, :get) == 43
    assert GenServer.call(c, {:incr, 2}) == {:error, :badarg}

    # init's error, and the program's types only (hordec's built-ins are not there)
    assert start.("counter", :nope) == {:error, {:not_an_integer, :nope}}
    assert start.("echo", 1) == {:error, {:unknown_worker_type, "echo"}}

    # it is an ordinary process for monitors and exit signals
    ref = Process.monitor(c)
    Process.exit(c, :kill)
    assert_receive {:DOWN, ^ref, :process, ^c, :killed}, 5_000
    assert {:ok, other} = start.("counter", -5)
    assert GenServer.call(other, :incr) == -4
  end

  # Runs the example until the test ends (--quit-on-eof: it exits when the port closes), its
  # stderr in a log file shown when it fails to start.
  defp start_example(bin) do
    name = unique_name("kvw")
    node = :"#{name}@127.0.0.1"
    log = Path.join(System.tmp_dir!(), "#{name}.log")

    args = [
      "--name",
      "#{node}",
      "--cookie",
      "#{cookie()}",
      "--connect",
      "#{node()}",
      "--quit-on-eof"
    ]

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        :exit_status,
        {:line, 4096},
        args: ["-c", ~S(exec "$0" "$@" 2>>"$LOG"), bin | args],
        env: [{~c"LOG", String.to_charlist(log)}]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    on_exit(fn ->
      if os_alive?(os_pid), do: System.cmd("kill", ["-9", "#{os_pid}"], stderr_to_stdout: true)
      File.rm(log)
    end)

    receive do
      {^port, {:data, {:eol, "kvstore ready" <> _}}} -> node
      {^port, {:exit_status, status}} -> flunk("#{bin} exited (#{status}): #{File.read!(log)}")
    after
      15_000 -> flunk("no ready line from #{bin}: #{File.read!(log)}")
    end
  end
end
