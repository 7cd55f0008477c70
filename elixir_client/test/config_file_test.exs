defmodule HordeC.ConfigFileTest do
  @moduledoc """
  Running hordec as a service: `--config FILE` with the real binary (options from a file, the command line after
  it winning, the shipped contrib/hordec.conf starting as it is), and the documented exit statuses: 2 for a bad
  option or config file (naming the file and line), 1 for a start-up failure, 0 after SIGTERM.
  """
  use HordeC.InteropCase, async: true

  defp write!(body, mode \\ 0o600) do
    path = Path.join(System.tmp_dir!(), "#{unique_name("hordec_conf")}.conf")
    File.write!(path, body)
    File.chmod!(path, mode)
    on_exit(fn -> File.rm(path) end)
    path
  end

  test "a node gets its options from a config file; a later command-line option wins" do
    reg = :"conf_reg_#{System.unique_integer([:positive])}"
    sup = :"conf_sup_#{System.unique_integer([:positive])}"

    file =
      write!("""
      # replicas to start with the node
      registry #{reg}:duplicate
      supervisor "#{sup}"    # quoted
      ticktime = 7
      log-level debug
      """)

    h = start_hordec(args: ["--config", file, "--log-level", "info"])
    assert GenServer.call({reg, h.node}, :members) == [{reg, h.node}]
    assert ctl(h, {:registry_start, reg, [keys: :duplicate]}) |> elem(0) == :ok
    assert {:ok, _} = ctl(h, {:supervisor_start, sup, []})
    assert info(h).ticktime == 7
    # --log-level info came after the file's debug: no debug lines
    Process.sleep(200)
    refute log(h) =~ ~r/^debug /m
  end

  test "contrib/hordec.conf starts a node as shipped (only the node name and cookie differ here)" do
    shipped = File.read!(Path.expand("../contrib/hordec.conf"))
    assert shipped =~ ~r/^name /m and shipped =~ ~r/^cookie-file /m

    # start_hordec gives the name and cookie; a free port for the metrics the file turns on
    {:ok, s} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, mport} = :inet.port(s)
    :gen_tcp.close(s)

    body =
      shipped
      |> String.replace(~r/^(name|cookie-file) .*$/m, "# \\0")
      |> String.replace(~r/^port 4370$/m, "port 0")
      |> String.replace(~r/^metrics-port \d+$/m, "metrics-port #{mport}")

    h = start_hordec(args: ["--config", write!(body, 0o640)])
    assert ctl(h, :ping) == :pong
    {:ok, _} = Application.ensure_all_started(:inets)
    url = ~c"http://127.0.0.1:#{mport}/metrics"

    assert {:ok, {{_, 200, _}, _, body}} =
             :httpc.request(:get, {url, []}, [], body_format: :binary)

    assert body =~ "hordec_info{"
  end

  test "exit status 2 for a bad option or config file, naming the file, the line and the option" do
    name = "#{unique_name("conf")}@127.0.0.1"

    for {body, mode, want} <- [
          {"port 1\nfrobnicate 3\n", 0o600, ~r/\.conf:2: unknown option 'frobnicate'/},
          {"# c\n\nport many\n", 0o600, ~r/\.conf:3: --port wants a number/},
          {"watch-stdin now\n", 0o600, ~r/\.conf:1: option 'watch-stdin' takes no value/},
          {"cookie \"abc\n", 0o600, ~r/\.conf:1: unterminated quote/},
          {"cookie secret\n", 0o644, ~r/\.conf:1: .*chmod 600/}
        ] do
      r = run_hordec(["--name", name, "--cookie", "c", "--config", write!(body, mode)])
      assert r.status == 2, "#{inspect(body)} exited #{inspect(r.status)}: #{r.stderr}"
      assert r.stderr =~ want
    end

    r = run_hordec(["--name", name, "--config", "/nonexistent/hordec.conf"])
    assert r.status == 2
    assert r.stderr =~ "/nonexistent/hordec.conf"

    r = run_hordec(["--name", name, "--cookie", "c", "--no-such-flag"])
    assert r.status == 2
  end

  test "exit status 1 when it cannot start, 0 after SIGTERM" do
    {:ok, lsock} = :gen_tcp.listen(0, [:binary, ip: {0, 0, 0, 0}, reuseaddr: false])
    {:ok, port} = :inet.port(lsock)

    r =
      run_hordec([
        "--name",
        "#{unique_name("busy")}@127.0.0.1",
        "--cookie",
        "c",
        "--port",
        "#{port}"
      ])

    assert r.status == 1
    :gen_tcp.close(lsock)

    h = start_hordec()
    signal(h, "TERM")
    assert wait_exit(h, 10_000) == 0
  end
end
