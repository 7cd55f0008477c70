defmodule HordeC.ExampleKvstoreTest do
  @moduledoc """
  The C example `examples/kvstore` (a key-value store with expiry written against the
  installed libhordec and its public headers only), called from Elixir with `GenServer.call`.

  The binary comes from `HORDEC_EXAMPLE_BIN`: one path, or several separated by `:` (for
  example the CMake and the pkg-config builds, as `scripts/build_examples.sh` prints them);
  the same scenario runs against each. Without the variable the test is skipped.
  """
  use HordeC.InteropCase, async: true

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
  defp start_kvstore(bin) do
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

    %{node: String.to_atom(node_str), port: port, os_pid: os_pid, log: log}
  end
end
