defmodule HordeC.AdoptionTest do
  # What a new user does: a throwaway Mix project that depends on this repository by path, built
  # from a clean state (its own _build and deps in a temp dir, hordec built by `mix compile`
  # through the :hordec compiler of elixir_client/mix.exs), with HordeC.Daemon, HordeC.Registry,
  # HordeC.Crdt and HordeC.DynamicSupervisor in its supervision tree and `hordec: :local` set once
  # in config/runtime.exs. Two BEAM nodes of it share state with no hordec started by hand, and
  # `kill -9` of one BEAM leaves no hordec behind.
  use HordeC.InteropCase, async: false

  @moduletag timeout: 900_000
  # It builds its own hordec (through the Mix compiler): the sanitizer pass of scripts/test.sh,
  # which exists to run the ASan hordec, leaves it out.
  @moduletag :adoption
  @repo Path.expand("../..", __DIR__)

  @mix_exs """
  defmodule Adopt.MixProject do
    use Mix.Project

    def project do
      [app: :adopt, version: "0.1.0", elixir: "~> 1.14", deps: deps()]
    end

    def application, do: [mod: {Adopt.Application, []}, extra_applications: [:logger]]

    defp deps, do: [{:horde_c, path: "@CLIENT@"}]
  end
  """

  @runtime_exs """
  import Config
  # Every HordeC object of this app attaches to the hordec daemon its own node runs.
  config :horde_c, hordec: :local
  """

  @app_ex """
  defmodule Adopt.Application do
    use Application

    @impl true
    def start(_type, _args) do
      children = [
        HordeC.Daemon,
        {HordeC.Registry, name: Adopt.Registry, keys: :unique},
        {HordeC.Crdt, name: Adopt.Map},
        {HordeC.DynamicSupervisor, name: Adopt.Sup, strategy: :one_for_one}
      ]

      # rest_for_one: if the daemon restarts, what uses it restarts after it.
      Supervisor.start_link(children, strategy: :rest_for_one, name: Adopt.Supervisor)
    end
  end

  defmodule Adopt do
    def register(key) do
      {:ok, pid} = Agent.start(fn -> key end, name: {:via, HordeC.Registry, {Adopt.Registry, key}})
      pid
    end
  end
  """

  # The child `mix` and BEAM processes must not see this test run's settings: no HORDEC_BIN (hordec
  # is built by the dependency's compiler), no shared build path, the dev environment.
  @clean_env [
    {"MIX_ENV", "dev"},
    {"HORDEC_BIN", nil},
    {"HORDEC_VECTORS_BIN", nil},
    {"MIX_BUILD_PATH", nil},
    {"MIX_DEPS_PATH", nil},
    {"MIX_EXS", nil},
    {"MIX_LOCKFILE", nil},
    {"MIX_TARGET", nil},
    {"ASAN_OPTIONS", nil},
    {"UBSAN_OPTIONS", nil}
  ]

  setup_all do
    dir = Path.join(System.tmp_dir!(), unique_name("horde_c_adopt"))
    File.rm_rf!(dir)
    File.mkdir_p!(Path.join(dir, "lib"))
    File.mkdir_p!(Path.join(dir, "config"))

    File.write!(
      Path.join(dir, "mix.exs"),
      String.replace(@mix_exs, "@CLIENT@", Path.join(@repo, "elixir_client"))
    )

    File.write!(Path.join(dir, "config/runtime.exs"), @runtime_exs)
    File.write!(Path.join(dir, "lib/adopt.ex"), @app_ex)
    on_exit(fn -> File.rm_rf!(dir) end)

    started = System.monotonic_time(:millisecond)
    out = mix!(dir, ["deps.get"]) <> mix!(dir, ["compile"])
    total = (System.monotonic_time(:millisecond) - started) / 1000

    hordec_secs =
      case Regex.run(~r/built \S+hordec in ([\d.]+) s/, out) do
        [_, s] -> s
        nil -> "?"
      end

    IO.puts(
      "adoption: throwaway project built from a clean state in #{Float.round(total, 1)} s " <>
        "(hordec through CMake: #{hordec_secs} s)"
    )

    %{dir: dir, build_output: out}
  end

  defp mix!(dir, args) do
    {out, status} = System.cmd("mix", args, cd: dir, env: @clean_env, stderr_to_stdout: true)

    if status != 0, do: flunk("mix #{Enum.join(args, " ")} failed (#{status}):\n#{out}")
    out
  end

  test "a missing build tool stops mix deps.compile with the package to install", %{dir: dir} do
    # A PATH with every tool of this machine except cmake, and a build path of its own (so the
    # dependency is built again, from nothing).
    bin = Path.join(dir, "bin_without_cmake")
    File.mkdir_p!(bin)

    for dir <- ["/usr/local/bin", "/usr/bin", "/bin"],
        File.dir?(dir),
        f <- File.ls!(dir),
        f != "cmake",
        not File.exists?(Path.join(bin, f)),
        do: File.ln_s(Path.join(dir, f), Path.join(bin, f))

    env = [
      {"PATH", bin}
      | List.keyreplace(
          @clean_env,
          "MIX_BUILD_PATH",
          0,
          {"MIX_BUILD_PATH", Path.join(dir, "_build_without_cmake")}
        )
    ]

    {out, status} = System.cmd("mix", ["deps.compile"], cd: dir, env: env, stderr_to_stdout: true)
    assert status != 0
    assert out =~ "horde_c: building hordec needs cmake, not found in PATH. Install cmake"
    assert out =~ "apt-get install cmake"
  end

  # One BEAM node of the throwaway app, as an OS process owned by the test (its output is
  # discarded with the port's messages).
  defp start_app(dir) do
    name = unique_name("adopt")
    node = :"#{name}@127.0.0.1"

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        cd: dir,
        env:
          for({k, v} <- @clean_env, do: {to_charlist(k), if(v, do: to_charlist(v), else: false)}),
        args:
          ["--name", Atom.to_string(node), "--cookie", Atom.to_string(cookie())] ++
            ["-S", "mix", "run", "--no-compile", "--no-deps-check", "--no-halt"]
      ])

    eventually(
      fn ->
        Node.connect(node) == true and
          match?(%{}, :erpc.call(node, HordeC.Daemon, :status, [], 5_000))
      end,
      60_000,
      200
    )

    os_pid = :erpc.call(node, System, :pid, []) |> String.to_integer()
    daemon = :erpc.call(node, HordeC.Daemon, :status, [])

    on_exit(fn ->
      # Killing the BEAM ends its hordec too (--watch-stdin), so either may be gone by the time
      # its kill runs: a failed kill is not an error here.
      for pid <- [os_pid, daemon.os_pid],
          do: System.cmd("kill", ["-KILL", Integer.to_string(pid)], stderr_to_stdout: true)
    end)

    %{node: node, os_pid: os_pid, port: port, hordec: daemon.node, hordec_pid: daemon.os_pid}
  end

  test "two nodes of an app depending on horde_c by path share state through their own daemons",
       %{dir: dir, build_output: out} do
    # hordec was built by the dependency's compiler, into the app's _build.
    assert out =~ "horde_c: building hordec with CMake"
    assert File.regular?(Path.join(dir, "_build/dev/lib/horde_c/priv/hordec"))

    a = start_app(dir)
    b = start_app(dir)

    # Each node runs its own hordec, from the app's _build (none was started by this test).
    for app <- [a, b] do
      assert :erpc.call(app.node, HordeC.Daemon, :status, []).executable ==
               Path.join(dir, "_build/dev/lib/horde_c/priv/hordec")

      assert HordeC.Node.ping(app.hordec) == :pong
    end

    # The application's cluster forms (libcluster would do this); the daemons find each other.
    assert :erpc.call(a.node, Node, :connect, [b.node])
    eventually(fn -> :erpc.call(a.node, HordeC.Daemon, :peers, []) == [b.hordec] end, 15_000)
    eventually(fn -> :erpc.call(b.node, HordeC.Daemon, :peers, []) == [a.hordec] end, 15_000)

    # The registry: a process registered on A is found, and called, from B.
    pid = :erpc.call(a.node, Adopt, :register, ["job"])

    eventually(
      fn ->
        :erpc.call(b.node, HordeC.Registry, :lookup, [Adopt.Registry, "job"]) == [{pid, nil}]
      end,
      15_000
    )

    via = {:via, HordeC.Registry, {Adopt.Registry, "job"}}
    assert :erpc.call(b.node, Agent, :get, [via, &Function.identity/1]) == "job"

    # The map: written on B, read on A.
    :erpc.call(b.node, HordeC.Crdt, :put, [Adopt.Map, :greeting, "hello from B"])

    eventually(
      fn -> :erpc.call(a.node, HordeC.Crdt, :get, [Adopt.Map, :greeting]) == "hello from B" end,
      15_000
    )

    # The supervisor: both hordec replicas are members everywhere.
    eventually(
      fn ->
        members = :erpc.call(a.node, HordeC.Cluster, :members, [Adopt.Sup])
        {Adopt.Sup, a.hordec} in members and {Adopt.Sup, b.hordec} in members
      end,
      15_000
    )

    # kill -9 of A: its hordec goes too, and B's registry forgets A's process.
    signal(a.os_pid, "KILL")
    eventually(fn -> not os_alive?(a.os_pid) end, 5_000)
    eventually(fn -> not os_alive?(a.hordec_pid) end, 10_000)

    eventually(
      fn -> :erpc.call(b.node, HordeC.Registry, :lookup, [Adopt.Registry, "job"]) == [] end,
      15_000
    )

    assert :erpc.call(b.node, HordeC.Crdt, :get, [Adopt.Map, :greeting]) == "hello from B"
    assert os_alive?(b.hordec_pid)
  end
end
