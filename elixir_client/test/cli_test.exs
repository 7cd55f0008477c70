defmodule HordeC.CliTest do
  @moduledoc "The hordec command line: flags, ready line, signals, exit statuses."
  use HordeC.InteropCase, async: true

  test "--version prints the version and exits 0" do
    assert %{status: 0, stdout: out} = run_hordec(["--version"])
    assert out =~ "0.1.0"
  end

  test "--help prints usage and exits 0" do
    assert %{status: 0, stdout: out, stderr: err} = run_hordec(["--help"])
    assert out <> err =~ "--sname"
    assert out <> err =~ "--cookie"
  end

  test "an unknown flag: non-zero exit with a message on stderr" do
    assert %{status: status, stderr: err} = run_hordec(["--no-such-flag"])
    assert is_integer(status) and status != 0
    assert err =~ "no-such-flag"
  end

  test "a missing node name or bad values: non-zero exit with a message" do
    for args <- [
          ["--cookie", "c"],
          ["--name", "x@127.0.0.1", "--cookie", "c", "--port", "notaport"],
          ["--name", "x@127.0.0.1", "--cookie", "c", "--ticktime", "-3"],
          ["--name", "x@127.0.0.1", "--cookie", "c", "--log-level", "loud"],
          ["--name", "x@127.0.0.1", "--cookie-file", "/nonexistent/cookie"],
          ["--name"]
        ] do
      assert %{status: status, stderr: err} = run_hordec(args)
      assert is_integer(status) and status != 0, "#{inspect(args)} exited #{inspect(status)}"
      assert String.trim(err) != "", "#{inspect(args)}: nothing on stderr"
    end
  end

  test "a port already in use: non-zero exit with a message" do
    {:ok, lsock} = :gen_tcp.listen(0, [:binary, ip: {0, 0, 0, 0}, reuseaddr: false])
    {:ok, port} = :inet.port(lsock)
    name = "#{unique_name("busy")}@127.0.0.1"

    assert %{status: status, stderr: err} =
             run_hordec(["--name", name, "--cookie", "c", "--port", "#{port}"])

    assert is_integer(status) and status != 0
    assert String.trim(err) != ""
    :gen_tcp.close(lsock)
  end

  test "the ready line names the node and its port; epmd knows that port" do
    h = start_hordec()
    assert h.dist_port > 0
    assert {:ok, port} = RawDist.port_please(h.node)
    assert port == h.dist_port
  end

  test "--port N listens on N" do
    {:ok, lsock} = :gen_tcp.listen(0, [])
    {:ok, free} = :inet.port(lsock)
    :gen_tcp.close(lsock)
    h = start_hordec(port: free)
    assert h.dist_port == free
    assert ctl(h, :ping) == :pong
  end

  test "--sname works" do
    name = unique_name("s")
    # runs until killed at the timeout; what matters is the ready line
    assert %{status: :timeout, stdout: out} =
             run_hordec(["--sname", name, "--cookie", "c"], 3_000)

    assert out =~ ~r/^hordec ready node=#{name}@[^.\s]+ port=\d+$/m
  end

  test "SIGTERM: clean exit 0, and the BEAM sees nodedown" do
    h = start_hordec()
    assert Node.ping(h.node) == :pong
    signal(h, "TERM")
    assert wait_exit(h, 5_000) == 0
    eventually(fn -> h.node not in Node.list(:hidden) end)
  end

  test "SIGINT: clean exit 0" do
    h = start_hordec()
    assert ctl(h, :ping) == :pong
    signal(h, "INT")
    assert wait_exit(h, 5_000) == 0
  end

  test "the same node name twice: the second one fails" do
    h = start_hordec()

    assert %{status: status, stderr: err} =
             run_hordec(["--name", Atom.to_string(h.node), "--cookie", "c"])

    assert is_integer(status) and status != 0
    assert String.trim(err) != ""
    assert ctl(h, :ping) == :pong
  end

  test "log lines have the documented format" do
    h = start_hordec(log_level: "debug")
    assert ctl(h, :ping) == :pong
    lines = h |> log() |> String.split("\n", trim: true)
    assert lines != []

    for line <- lines do
      assert line =~ ~r/^(error|warn|info|debug) hordec: \S/, "bad log line: #{inspect(line)}"
    end
  end
end
