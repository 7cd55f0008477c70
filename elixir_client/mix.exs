defmodule Mix.Tasks.Compile.Hordec do
  @shortdoc "Builds the hordec C node into priv/ with CMake"
  @moduledoc """
  Builds the `hordec` executable from the C sources next to this Mix project (the repository's
  root `CMakeLists.txt`) into the application's `priv/hordec`, where `HordeC.Daemon` finds it.

  Runs as the first compiler of the `:horde_c` project, so an application that depends on it by
  `path:` or `git:` (`subdir: "elixir_client"`) gets hordec built by `mix deps.compile`. No hex
  package is involved: this module is the whole build step.

    * Skipped when `HORDEC_BIN` is set (the in-repository flow: the tests use the hordec that
      `scripts/build.sh` built) and when `priv/hordec` is newer than every C source.
    * Before running CMake it checks what the build needs and names the missing package: cmake,
      a C compiler, make, erl_interface (`erlang-dev`), OpenSSL headers (`libssl-dev`).
    * `HORDEC_BUILD_JOBS` sets the parallelism (default: the number of schedulers).
    * Dependency builds are not `-Werror`: a newer compiler's new warning must not break an app.

  `mix clean` removes the CMake build directory and `priv/hordec`.
  """
  use Mix.Task.Compiler

  # The C sources: the repository this Mix project lives in.
  @root Path.expand("..", __DIR__)
  @sources ["CMakeLists.txt", "cmake/**/*", "c_src/**/*.{c,h}", "include/**/*.h"]

  @impl true
  def run(_args) do
    priv_bin = Path.join([Mix.Project.app_path(), "priv", "hordec"])

    cond do
      System.get_env("HORDEC_BIN", "") != "" ->
        {:noop, []}

      up_to_date?(priv_bin) ->
        {:noop, []}

      true ->
        build!(priv_bin)
        {:ok, []}
    end
  end

  @impl true
  def clean do
    File.rm_rf!(build_dir())
    File.rm(Path.join([Mix.Project.app_path(), "priv", "hordec"]))
    :ok
  end

  defp build_dir, do: Path.join(Mix.Project.app_path(), "cmake_build")

  defp up_to_date?(bin) do
    case File.stat(bin, time: :posix) do
      {:ok, %{mtime: built}} ->
        @sources
        |> Enum.flat_map(&Path.wildcard(Path.join(@root, &1)))
        |> Enum.all?(fn f ->
          match?({:ok, %{mtime: t}} when t <= built, File.stat(f, time: :posix))
        end)

      {:error, _} ->
        false
    end
  end

  defp build!(priv_bin) do
    unless File.regular?(Path.join(@root, "CMakeLists.txt")) do
      Mix.raise(
        "horde_c: the hordec C sources are not at #{@root}. Depend on the whole repository: " <>
          ~s|{:horde_c, path: "<repo>/elixir_client"} or {:horde_c, git: "<url>", subdir: "elixir_client"}|
      )
    end

    cmake = require_tool!("cmake", "cmake")
    cc = require_tool!(["cc", "gcc", "clang"], "gcc (a C compiler)")
    require_tool!("make", "make")
    check_erl_interface!()
    check_header!(cc, "openssl/evp.h", "libssl-dev")

    dir = build_dir()
    jobs = System.get_env("HORDEC_BUILD_JOBS") || Integer.to_string(System.schedulers_online())
    Mix.shell().info("==> horde_c: building hordec with CMake in #{dir} (-j#{jobs})")
    started = System.monotonic_time(:millisecond)

    cmd!(cmake, [
      "-S",
      @root,
      "-B",
      dir,
      "-DCMAKE_BUILD_TYPE=Release",
      "-DHORDEC_TESTS=OFF",
      "-DHORDEC_WERROR=OFF"
    ])

    cmd!(cmake, ["--build", dir, "--target", "hordec", "-j", jobs])
    File.mkdir_p!(Path.dirname(priv_bin))
    File.cp!(Path.join(dir, "hordec"), priv_bin)
    File.chmod!(priv_bin, 0o755)
    secs = (System.monotonic_time(:millisecond) - started) / 1000

    Mix.shell().info(
      "==> horde_c: built #{priv_bin} in #{:erlang.float_to_binary(secs, decimals: 1)} s"
    )
  end

  defp require_tool!(names, package) do
    Enum.find_value(List.wrap(names), &System.find_executable/1) ||
      Mix.raise(
        "horde_c: building hordec needs #{Enum.join(List.wrap(names), " or ")}, not found in PATH. " <>
          "Install #{package} (Debian/Ubuntu: apt-get install #{package |> String.split() |> hd()})"
      )
  end

  # erl_interface ships with Erlang/OTP but Debian splits its headers and libei into erlang-dev.
  defp check_erl_interface! do
    dir = :code.lib_dir(:erl_interface)

    unless is_list(dir) and File.regular?(Path.join([dir, "include", "ei.h"])) and
             File.regular?(Path.join([dir, "lib", "libei.a"])) do
      Mix.raise(
        "horde_c: building hordec needs erl_interface (ei.h and libei.a of this Erlang/OTP), " <>
          "not found. Install erlang-dev (Debian/Ubuntu: apt-get install erlang-dev)"
      )
    end
  end

  defp check_header!(cc, header, package) do
    probe = Path.join(System.tmp_dir!(), "horde_c_probe_#{System.unique_integer([:positive])}.c")
    File.write!(probe, "#include <#{header}>\n")

    try do
      case System.cmd(cc, ["-E", probe, "-o", "/dev/null"], stderr_to_stdout: true) do
        {_, 0} ->
          :ok

        {_, _} ->
          Mix.raise(
            "horde_c: building hordec needs <#{header}>, not found. " <>
              "Install #{package} (Debian/Ubuntu: apt-get install #{package})"
          )
      end
    after
      File.rm(probe)
    end
  end

  defp cmd!(exe, args) do
    case System.cmd(exe, args, stderr_to_stdout: true) do
      {_, 0} ->
        :ok

      {out, status} ->
        tail = out |> String.split("\n") |> Enum.take(-40) |> Enum.join("\n")

        Mix.raise(
          "horde_c: `#{Path.basename(exe)} #{Enum.join(args, " ")}` failed (exit #{status}):\n#{tail}"
        )
    end
  end
end

defmodule HordeC.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :horde_c,
      version: @version,
      elixir: "~> 1.14",
      elixirc_paths: elixirc_paths(Mix.env()),
      # The hordec C node is built first (Mix.Tasks.Compile.Hordec, above), into priv/.
      compilers: [:hordec | Mix.compilers()],
      start_permanent: Mix.env() == :prod,
      # No dependencies on purpose: the build machines have no network (no hex.pm).
      # Everything here must come from Elixir/OTP itself. :telemetry is used when present
      # (HordeC.Telemetry calls it only if an application loaded it), never required.
      deps: [],
      test_coverage: [ignore_modules: [~r/^HordeC\.Test/]],
      docs: [main: "HordeC"]
    ]
  end

  def application do
    [mod: {HordeC.Application, []}, extra_applications: extra_applications(Mix.env())]
  end

  # The raw distribution client in test/support computes MD5 handshake digests.
  # The TLS tests generate certificates (:public_key) and open TLS sockets (:ssl).
  defp extra_applications(:test), do: [:logger, :crypto, :public_key, :ssl]
  defp extra_applications(_), do: [:logger]

  # test/support holds the interop harness (real hordec OS processes, :peer nodes, a raw
  # distribution client). It is compiled to ebin only in :test, so peers started by the
  # harness can load those modules from the runner's code path.
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
