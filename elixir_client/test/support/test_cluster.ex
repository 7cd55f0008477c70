defmodule HordeC.TestCluster do
  @moduledoc """
  Interop test harness: real `hordec` OS processes and real BEAM peers (OTP `:peer`) on
  loopback, torn down whatever happens to the test.

  ## Setup (done once by `test_helper.exs`, see `setup_runner!/1`)

    * `epmd -daemon` is started if needed;
    * the test runner becomes `runner_<token>@127.0.0.1` (longnames) with cookie `cookie/0`;
    * processes left behind by a runner that died without cleaning up are killed;
    * a final sweep kills everything this runner started (`ExUnit.after_suite/1`).

  ## In tests

      h = start_hordec()                        # %Hordec{node: :"h_..@127.0.0.1", os_pid: ..}
      [h1, h2, h3] = start_hordecs(3)           # full mesh, connected to each other
      p = start_peer()                          # %Peer{node: .., pid: .., os_pid: ..}
      ctl(h, {:echo, 1})                        # GenServer.call({:hordec, h.node}, ...)
      eventually(fn -> p.node in peers(h) end)  # poll a condition with a deadline
      assert_log(h, ~r/rejected connection/)    # wait for a line in hordec's stderr

  Every `start_*` registers an `on_exit` callback (so it must be called from a test or
  `setup`/`setup_all` process) that `kill -9`s the OS process, and records the OS pid in a
  state directory for the suite-end sweep. Names are unique per test *and* per run
  (several `mix test` runs may share one epmd).
  """

  import ExUnit.Callbacks, only: [on_exit: 1]
  import ExUnit.Assertions

  @cookie :hordec_test_cookie
  @host "127.0.0.1"
  @ready_timeout 15_000

  defmodule Hordec do
    @moduledoc "A running `hordec` OS process started by `HordeC.TestCluster.start_hordec/1`."
    @enforce_keys [:node, :name, :os_pid, :port, :dist_port, :log_path, :cookie]
    defstruct [:node, :name, :os_pid, :port, :dist_port, :log_path, :cookie, args: []]

    @type t :: %__MODULE__{
            node: node(),
            name: String.t(),
            os_pid: pos_integer(),
            port: port(),
            dist_port: non_neg_integer(),
            log_path: Path.t(),
            cookie: atom(),
            args: [String.t()]
          }
  end

  defmodule Peer do
    @moduledoc "A BEAM node started with OTP `:peer` by `HordeC.TestCluster.start_peer/1`."
    @enforce_keys [:node, :pid, :cookie]
    defstruct [:node, :pid, :os_pid, :cookie, :connection]

    @type t :: %__MODULE__{
            node: node(),
            pid: pid(),
            os_pid: pos_integer() | nil,
            cookie: atom(),
            connection: :dist | :standard_io
          }
  end

  # ------------------------------------------------------------------------------------
  # runner setup and global sweep
  # ------------------------------------------------------------------------------------

  @doc """
  Makes the test runner a distributed node and prepares the state directory.

  Options: `:state_dir` (where logs and the pid registry go; default
  `_build/test/hordec_test` under the current directory).
  """
  @spec setup_runner!(keyword()) :: node()
  def setup_runner!(opts \\ []) do
    state_dir = Keyword.get(opts, :state_dir, Path.expand("_build/test/hordec_test"))
    token = random_token()
    :persistent_term.put({__MODULE__, :token}, token)
    :persistent_term.put({__MODULE__, :state_dir}, state_dir)
    File.mkdir_p!(procs_dir())
    File.mkdir_p!(logs_dir())

    {:ok, _} = Application.ensure_all_started(:crypto)
    ensure_epmd!()
    if tls?(), do: setup_tls!()

    unless Node.alive?() do
      name = :"runner_#{token}@#{@host}"

      case :net_kernel.start([name, :longnames]) do
        {:ok, _} -> :ok
        {:error, reason} -> raise "could not start distribution as #{name}: #{inspect(reason)}"
      end
    end

    Node.set_cookie(@cookie)
    sweep(:dead_runners)
    node()
  end

  @doc """
  Kills tracked OS processes. `:mine` kills everything this runner started (suite end);
  `:dead_runners` kills what runners that no longer exist left behind (suite start). A
  process is only killed if its command line still contains the node name it was started
  with, so a recycled pid is never hit.
  """
  @spec sweep(:mine | :dead_runners) :: non_neg_integer()
  def sweep(which) do
    me = System.pid() |> String.to_integer()

    for file <- File.ls!(procs_dir()), reduce: 0 do
      killed ->
        path = Path.join(procs_dir(), file)

        case read_tracked(path) do
          {:ok, %{runner: runner} = entry} ->
            target? =
              case which do
                :mine -> runner == me
                :dead_runners -> runner != me and not os_alive?(runner, "beam")
              end

            if target? do
              k = if os_alive?(entry.os_pid, entry.match), do: kill9(entry.os_pid) && 1, else: 0
              File.rm(path)
              killed + k
            else
              killed
            end

          :error ->
            File.rm(path)
            killed
        end
    end
  end

  # ------------------------------------------------------------------------------------
  # hordec processes
  # ------------------------------------------------------------------------------------

  @doc "The cookie shared by the runner, the peers and the hordec nodes (unless overridden)."
  @spec cookie() :: atom()
  def cookie, do: @cookie

  @doc "Path of the hordec executable: `$HORDEC_BIN`, else `../build/hordec` (relative to elixir_client)."
  @spec hordec_bin() :: Path.t()
  def hordec_bin do
    case System.get_env("HORDEC_BIN") do
      bin when bin not in [nil, ""] -> Path.expand(bin)
      _ -> Path.expand("../build/hordec")
    end
  end

  @doc "True when `hordec_bin/0` exists and is executable."
  @spec hordec_available?() :: boolean()
  def hordec_available? do
    case File.stat(hordec_bin()) do
      {:ok, %File.Stat{type: :regular, mode: mode}} -> Bitwise.band(mode, 0o111) != 0
      _ -> false
    end
  end

  @doc """
  Starts a `hordec` and waits for its ready line. Returns a `t:Hordec.t/0`.

  Options:
    * `:name` – node name without host (default: unique `h_<token>_<n>`)
    * `:cookie` – atom (default `cookie/0`); `:cookie_file` – path, passed as `--cookie-file` instead
    * `:ticktime` – seconds (`--ticktime`)
    * `:connect` – list of nodes (or `Hordec`s) passed as `--connect`
    * `:port` – listen port (default: none, hordec picks one)
    * `:log_level` – default `"info"`
    * `:args` – extra raw arguments appended to the command line
    * `:tls` – `:auto` (default: TLS with the run's optfile when `tls?/0`), `false` (plain TCP)
      or the path of an `ssl_dist_optfile` (TLS with that file)

  The calling process owns the OS process's stdout port: `wait_exit/2` works only there.
  stderr goes to `h.log_path`; see `log/1`, `assert_log/3`.
  """
  @spec start_hordec(keyword()) :: Hordec.t()
  def start_hordec(opts \\ []) do
    bin = hordec_bin()

    unless hordec_available?() do
      flunk("hordec executable not found at #{bin} (set HORDEC_BIN or build it with cmake)")
    end

    name = Keyword.get_lazy(opts, :name, fn -> unique_name("h") end)
    node_str = "#{name}@#{@host}"
    cookie = Keyword.get(opts, :cookie, @cookie)

    args =
      ["--name", node_str] ++
        case Keyword.fetch(opts, :cookie_file) do
          {:ok, file} -> ["--cookie-file", file]
          :error -> ["--cookie", Atom.to_string(cookie)]
        end ++
        opt_arg(opts, :port, "--port") ++
        opt_arg(opts, :ticktime, "--ticktime") ++
        Enum.flat_map(Keyword.get(opts, :connect, []), &["--connect", to_string(node_of(&1))]) ++
        ["--log-level", Keyword.get(opts, :log_level, "info")] ++
        case tls_optfile_for(opts) do
          nil -> []
          file -> ["--ssl-dist-optfile", file]
        end ++
        Keyword.get(opts, :args, [])

    log_path = Path.join(logs_dir(), "#{name}.log")
    {port, os_pid} = spawn_with_stderr(bin, args, log_path)
    track(os_pid, node_str, :hordec)
    on_exit(fn -> stop_os(os_pid, node_str) end)

    {node, dist_port} = await_ready(port, log_path, node_str)

    %Hordec{
      node: node,
      name: name,
      os_pid: os_pid,
      port: port,
      dist_port: dist_port,
      log_path: log_path,
      cookie: cookie,
      args: args
    }
  end

  @doc """
  Starts `n` hordec nodes. With `mesh: true` (default) every pair is connected with
  `{:connect, node}` and the call returns once each node lists all others in its peers.
  Other options are passed to `start_hordec/1` for every node.
  """
  @spec start_hordecs(pos_integer(), keyword()) :: [Hordec.t()]
  def start_hordecs(n, opts \\ []) when n >= 1 do
    {mesh?, opts} = Keyword.pop(opts, :mesh, true)
    hs = for _ <- 1..n, do: start_hordec(opts)
    if mesh?, do: connect_all(hs)
    hs
  end

  @doc "Connects every pair of the given hordec nodes and waits until all see each other."
  @spec connect_all([Hordec.t()]) :: :ok
  def connect_all(hs) do
    pairs = for {a, i} <- Enum.with_index(hs), {b, j} <- Enum.with_index(hs), i < j, do: {a, b}

    for {a, b} <- pairs do
      assert ctl(a, {:connect, b.node}) == :ok, "#{a.node} could not connect to #{b.node}"
    end

    for a <- hs do
      others = for b <- hs, b.node != a.node, do: b.node
      eventually(fn -> others -- peers(a) == [] end)
    end

    :ok
  end

  @doc "Sends `signal` (e.g. `\"TERM\"`, `\"KILL\"`, `\"STOP\"`, `\"CONT\"`) to an OS process."
  @spec signal(Hordec.t() | Peer.t() | pos_integer(), String.t()) :: :ok
  def signal(%{os_pid: os_pid}, sig), do: signal(os_pid, sig)

  def signal(os_pid, sig) when is_integer(os_pid) do
    {_, 0} = System.cmd("kill", ["-#{sig}", Integer.to_string(os_pid)], stderr_to_stdout: true)
    :ok
  end

  @doc """
  Waits for the exit status of a hordec started by the calling process. Returns the
  status, or `:timeout`.
  """
  @spec wait_exit(Hordec.t(), timeout()) :: non_neg_integer() | :timeout
  def wait_exit(%Hordec{port: port}, timeout \\ 5_000) do
    receive do
      {^port, {:exit_status, status}} -> status
    after
      timeout -> :timeout
    end
  end

  @doc """
  Runs hordec to completion (for `--help`, `--version`, bad flags). Returns
  `%{status: integer | :timeout, stdout: binary, stderr: binary}`; a run still going after
  `timeout` ms is killed and reported as `:timeout`.
  """
  @spec run_hordec([String.t()], timeout()) :: %{
          status: integer() | :timeout,
          stdout: binary(),
          stderr: binary()
        }
  def run_hordec(args, timeout \\ 5_000) do
    err_path = Path.join(logs_dir(), "run_#{unique_name("r")}.stderr")
    port = spawn_raw(hordec_bin(), args, err_path, [:stream])
    os_pid = port_os_pid(port)
    if os_pid, do: track(os_pid, hordec_bin(), :hordec)
    {status, out} = collect(port, [], System.monotonic_time(:millisecond) + timeout)
    if os_pid, do: stop_os(os_pid, hordec_bin())

    %{status: status, stdout: IO.iodata_to_binary(out), stderr: File.read!(err_path)}
  end

  defp collect(port, acc, deadline) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, data}} -> collect(port, [acc, data], deadline)
      {^port, {:exit_status, status}} -> {status, acc}
    after
      left -> {:timeout, acc}
    end
  end

  # ------------------------------------------------------------------------------------
  # TLS distribution (HORDEC_TLS=1)
  # ------------------------------------------------------------------------------------

  @doc """
  True when the run is over TLS (`HORDEC_TLS=1`): the runner, every hordec and every peer then
  use `inet_tls_dist` with the run's certificates (see `HordeC.Test.TlsCerts`). The runner's own
  VM must be started with `-proto_dist inet_tls -ssl_dist_optfile FILE` (e.g. through
  `ELIXIR_ERL_OPTIONS`); the file itself is written by `setup_runner!/1` before distribution starts.
  """
  @spec tls?() :: boolean()
  def tls?, do: System.get_env("HORDEC_TLS") in ["1", "true"]

  @doc "The run's `ssl_dist_optfile` (TLS runs only; `nil` otherwise)."
  @spec tls_optfile() :: Path.t() | nil
  def tls_optfile, do: :persistent_term.get({__MODULE__, :tls_optfile}, nil)

  @doc "Where the run's certificates are (TLS runs), or a fresh directory of them for `tls_test.exs`."
  @spec tls_dir() :: Path.t()
  def tls_dir do
    case tls_optfile() do
      nil ->
        dir = Path.join(state_dir(), "tls_" <> token())

        unless File.exists?(Path.join(dir, "ssl_dist.conf")),
          do: HordeC.Test.TlsCerts.generate!(dir)

        dir

      file ->
        Path.dirname(file)
    end
  end

  defp setup_tls! do
    file =
      case :init.get_argument(:ssl_dist_optfile) do
        {:ok, [[f]]} ->
          List.to_string(f)

        _ ->
          raise """
          HORDEC_TLS=1 needs the test runner started with TLS distribution, e.g.
            ELIXIR_ERL_OPTIONS="-proto_dist inet_tls -ssl_dist_optfile /tmp/hordec_tls/ssl_dist.conf" HORDEC_TLS=1 mix test
          (the certificates and the file are generated there for the run)
          """
      end

    unless :init.get_argument(:proto_dist) == {:ok, [[~c"inet_tls"]]},
      do: raise("HORDEC_TLS=1 needs the test runner started with -proto_dist inet_tls")

    HordeC.Test.TlsCerts.generate!(Path.dirname(file), Path.basename(file))
    :persistent_term.put({__MODULE__, :tls_optfile}, file)
  end

  defp tls_optfile_for(opts) do
    case Keyword.get(opts, :tls, :auto) do
      :auto -> tls_optfile()
      false -> nil
      file when is_binary(file) -> file
    end
  end

  # ------------------------------------------------------------------------------------
  # control requests
  # ------------------------------------------------------------------------------------

  @doc "`GenServer.call({:hordec, node}, request, timeout)`; exits like `GenServer.call/3` does."
  @spec ctl(Hordec.t() | node(), term(), timeout()) :: term()
  def ctl(h, request, timeout \\ 5_000),
    do: GenServer.call({:hordec, node_of(h)}, request, timeout)

  @doc "The `:info` map of a hordec node."
  @spec info(Hordec.t() | node()) :: map()
  def info(h), do: ctl(h, :info)

  @doc "The peers a hordec node reports in its `:info`."
  @spec peers(Hordec.t() | node()) :: [node()]
  def peers(h), do: info(h).peers

  # ------------------------------------------------------------------------------------
  # BEAM peers
  # ------------------------------------------------------------------------------------

  @doc """
  Starts a BEAM peer node (`-name <name>@127.0.0.1`) with the runner's code path (so it can
  run this project's modules, including `test/support`) and Elixir started.

  Options:
    * `:name` – default unique `p_<token>_<n>`
    * `:cookie` – default `cookie/0`
    * `:ticktime` – `net_ticktime` in seconds
    * `:connection` – `:dist` (the default when cookie and ticktime are the runner's: the
      runner is connected to the peer) or `:standard_io` (the default otherwise: control
      goes through the peer's stdin/stdout, no distribution link to the runner; a
      dist-connected peer halts when it loses its link to the runner)
    * `:args` – extra `erl` arguments (strings)
    * `:tls` – as for `start_hordec/1`: `-proto_dist inet_tls -ssl_dist_optfile FILE` when TLS
    * `:alive` – `false` starts a node that is *not* distributed (no name, `Node.alive?/0` is
      false; controlled through stdio); its `node` is `:nonode@nohost`. Default `true`.

  Use `peer_call/4` to run code on it, whatever the connection.
  """
  @spec start_peer(keyword()) :: Peer.t()
  def start_peer(opts \\ []) do
    name = Keyword.get_lazy(opts, :name, fn -> unique_name("p") end)
    cookie = Keyword.get(opts, :cookie, @cookie)
    alive? = Keyword.get(opts, :alive, true)
    # A dist-connected peer halts when it loses the runner, so a peer whose cookie or
    # ticktime differs from the runner's is controlled through stdio instead.
    default_conn =
      if alive? and cookie == @cookie and not Keyword.has_key?(opts, :ticktime),
        do: :dist,
        else: :standard_io

    connection = Keyword.get(opts, :connection, default_conn)

    # A node without a name still carries `name` on its command line, for the sweep.
    args =
      [~c"-setcookie", Atom.to_charlist(cookie)] ++
        case Keyword.fetch(opts, :ticktime) do
          {:ok, t} -> [~c"-kernel", ~c"net_ticktime", Integer.to_charlist(t)]
          :error -> []
        end ++
        [~c"-pa" | extra_code_paths()] ++
        case alive? && tls_optfile_for(opts) do
          file when is_binary(file) ->
            [~c"-proto_dist", ~c"inet_tls", ~c"-ssl_dist_optfile", String.to_charlist(file)]

          _ ->
            []
        end ++
        Enum.map(Keyword.get(opts, :args, []), &to_charlist/1) ++
        if(alive?, do: [], else: [~c"-hordec_test_peer", String.to_charlist(name)])

    peer_opts =
      if(alive?,
        do: %{
          name: String.to_charlist(name),
          host: String.to_charlist(@host),
          longnames: true,
          args: args
        },
        else: %{args: args}
      )
      |> then(fn o ->
        if connection == :standard_io, do: Map.put(o, :connection, :standard_io), else: o
      end)

    {pid, node} =
      case :peer.start(peer_opts) do
        {:ok, pid, node} -> {pid, node}
        {:ok, pid} -> {pid, :nonode@nohost}
      end

    peer = %Peer{node: node, pid: pid, os_pid: nil, cookie: cookie, connection: connection}
    node_str = if alive?, do: Atom.to_string(node), else: name
    os_pid = peer_call(peer, :os, :getpid, []) |> List.to_integer()
    track(os_pid, node_str, :peer)

    on_exit(fn ->
      stop_os(os_pid, node_str)

      try do
        :peer.stop(pid)
      catch
        _, _ -> :ok
      end
    end)

    peer = %Peer{peer | os_pid: os_pid}
    {:ok, _} = peer_call(peer, :application, :ensure_all_started, [:elixir])
    peer
  end

  @doc """
  Runs `apply(m, f, a)` on the peer and returns the result (raises/exits like the remote
  call did). Goes through `:erpc` for dist-connected peers, `:peer.call/5` otherwise.
  """
  @spec peer_call(Peer.t(), module(), atom(), list(), timeout()) :: term()
  def peer_call(peer, m, f, a, timeout \\ 15_000)

  def peer_call(%Peer{connection: :dist, node: node}, m, f, a, timeout),
    do: :erpc.call(node, m, f, a, timeout)

  def peer_call(%Peer{pid: pid}, m, f, a, timeout), do: :peer.call(pid, m, f, a, timeout)

  @doc "Runs `apply(m, f, a)` on the peer without waiting for the result."
  @spec peer_cast(Peer.t(), module(), atom(), list()) :: :ok
  def peer_cast(%Peer{connection: :dist, node: node}, m, f, a), do: :erpc.cast(node, m, f, a)
  def peer_cast(%Peer{pid: pid}, m, f, a), do: :peer.cast(pid, m, f, a)

  # ------------------------------------------------------------------------------------
  # waiting and logs
  # ------------------------------------------------------------------------------------

  @doc """
  Calls `fun` until it returns a truthy value (returned) or `timeout` ms pass. A `fun`
  that raises (e.g. a failing `assert`) or exits counts as "not yet"; at the deadline the
  last error is re-raised, so the failure message is the real one.
  """
  @spec eventually((() -> term()), timeout(), pos_integer()) :: term()
  def eventually(fun, timeout \\ 5_000, interval \\ 50) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_eventually(fun, deadline, interval)
  end

  defp do_eventually(fun, deadline, interval) do
    result =
      try do
        {:ok, fun.()}
      rescue
        e -> {:raised, e, __STACKTRACE__}
      catch
        :exit, reason -> {:exited, reason}
      end

    case result do
      {:ok, value} when value not in [nil, false] ->
        value

      _ ->
        if System.monotonic_time(:millisecond) >= deadline do
          case result do
            {:raised, e, st} ->
              reraise e, st

            {:exited, reason} ->
              flunk("condition still exiting at deadline: #{inspect(reason)}")

            {:ok, value} ->
              flunk("condition not met before deadline (last value: #{inspect(value)})")
          end
        else
          Process.sleep(interval)
          do_eventually(fun, deadline, interval)
        end
    end
  end

  @doc """
  Runs `fun`; if it fails, fails again with the hordec's exit status (when it exited and
  the caller owns its port) and its log appended, so a crash of the C node is visible.
  """
  @spec diagnose(Hordec.t(), (() -> result)) :: result when result: term()
  def diagnose(%Hordec{} = h, fun) do
    fun.()
  rescue
    e in [ExUnit.AssertionError] ->
      status = wait_exit(h, 0)

      flunk("""
      #{Exception.message(e)}
      hordec #{h.node}: #{if status == :timeout, do: "still running", else: "exited with status #{status}"}; log:
      #{log(h)}
      """)
  end

  @doc "The hordec's stderr so far."
  @spec log(Hordec.t()) :: binary()
  def log(%Hordec{log_path: path}) do
    case File.read(path) do
      {:ok, bin} -> bin
      {:error, _} -> ""
    end
  end

  @doc "A position in the log; pass it as `since:` to `assert_log/3` to look only at newer lines."
  @spec log_mark(Hordec.t()) :: non_neg_integer()
  def log_mark(h), do: byte_size(log(h))

  @doc """
  Waits until a line of hordec's stderr matches every regex in `regexes` (one regex or a
  list) and returns that line. Options: `:since` (a `log_mark/1`), `:timeout` (default 5 s).
  """
  @spec assert_log(Hordec.t(), Regex.t() | [Regex.t()], keyword()) :: String.t()
  def assert_log(h, regexes, opts \\ []) do
    regexes = List.wrap(regexes)
    since = Keyword.get(opts, :since, 0)

    try do
      eventually(
        fn ->
          h
          |> log()
          |> binary_part_from(since)
          |> String.split("\n")
          |> Enum.find(fn line -> Enum.all?(regexes, &Regex.match?(&1, line)) end)
        end,
        Keyword.get(opts, :timeout, 5_000)
      )
    rescue
      ExUnit.AssertionError ->
        flunk("""
        no line of #{h.log_path} matches #{inspect(regexes)}; log since mark:
        #{binary_part_from(log(h), since)}
        """)
    end
  end

  defp binary_part_from(bin, since) when byte_size(bin) >= since,
    do: binary_part(bin, since, byte_size(bin) - since)

  defp binary_part_from(bin, _), do: bin

  # ------------------------------------------------------------------------------------
  # misc helpers
  # ------------------------------------------------------------------------------------

  @doc "A node-name-safe unique string: `<prefix>_<run token>_<n>`."
  @spec unique_name(String.t()) :: String.t()
  def unique_name(prefix), do: "#{prefix}_#{token()}_#{System.unique_integer([:positive])}"

  @doc "The node of a `Hordec`, a `Peer`, or a node atom."
  @spec node_of(Hordec.t() | Peer.t() | node()) :: node()
  def node_of(%{node: node}), do: node
  def node_of(node) when is_atom(node), do: node

  @doc "True if the OS process exists (and is not a zombie)."
  @spec os_alive?(pos_integer()) :: boolean()
  def os_alive?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} -> not String.contains?(stat, ") Z ")
      _ -> false
    end
  end

  defp os_alive?(os_pid, match) do
    os_alive?(os_pid) and
      case File.read("/proc/#{os_pid}/cmdline") do
        {:ok, cmd} -> String.contains?(cmd, match)
        _ -> false
      end
  end

  # ---- internals ----------------------------------------------------------------------

  defp token do
    case :persistent_term.get({__MODULE__, :token}, nil) do
      nil -> raise "HordeC.TestCluster.setup_runner!/1 was not called (see test_helper.exs)"
      t -> t
    end
  end

  defp state_dir, do: :persistent_term.get({__MODULE__, :state_dir})
  defp procs_dir, do: Path.join(state_dir(), "procs")
  defp logs_dir, do: Path.join([state_dir(), "logs", token()])

  defp random_token, do: :crypto.strong_rand_bytes(4) |> Base.encode16(case: :lower)

  defp ensure_epmd! do
    epmd = System.find_executable("epmd") || raise "epmd not found in PATH"
    # -daemon is a no-op when one is already running.
    {_, 0} = System.cmd(epmd, ["-daemon"], stderr_to_stdout: true)

    eventually(
      fn -> match?({:ok, _}, :erl_epmd.names(~c"127.0.0.1")) end,
      5_000
    )
  end

  defp opt_arg(opts, key, flag) do
    case Keyword.fetch(opts, key) do
      {:ok, v} -> [flag, to_string(v)]
      :error -> []
    end
  end

  # stderr goes to a file (appended, so the tail survives restarts); stdout stays on the port.
  defp spawn_with_stderr(bin, args, log_path) do
    port = spawn_raw(bin, args, log_path, [{:line, 16_384}])
    {port, port_os_pid(port)}
  end

  defp spawn_raw(bin, args, stderr_path, extra) do
    Port.open(
      {:spawn_executable, "/bin/sh"},
      [
        :binary,
        :exit_status,
        :use_stdio,
        :hide,
        args: ["-c", ~S(exec "$0" "$@" 2>>"$HORDEC_TEST_STDERR"), bin | args],
        env: [{~c"HORDEC_TEST_STDERR", String.to_charlist(stderr_path)}]
      ] ++ extra
    )
  end

  # nil when the process already exited (its port is closed then).
  defp port_os_pid(port) do
    case Port.info(port, :os_pid) do
      {:os_pid, os_pid} -> os_pid
      nil -> nil
    end
  end

  defp await_ready(port, log_path, node_str, acc \\ "") do
    receive do
      {^port, {:data, {:noeol, chunk}}} ->
        await_ready(port, log_path, node_str, acc <> chunk)

      {^port, {:data, {:eol, chunk}}} ->
        line = acc <> chunk

        case Regex.run(~r/^hordec ready node=(\S+) port=(\d+)$/, line) do
          [_, ^node_str, p] ->
            {String.to_atom(node_str), String.to_integer(p)}

          [_, other, _] ->
            flunk("hordec reported node=#{other}, expected #{node_str}")

          nil ->
            flunk(
              "unexpected first line on hordec stdout: #{inspect(line)}; stderr:\n#{File.read!(log_path)}"
            )
        end

      {^port, {:exit_status, status}} ->
        flunk(
          "hordec exited with status #{status} before its ready line; stderr:\n#{File.read!(log_path)}"
        )
    after
      @ready_timeout ->
        flunk(
          "no ready line from hordec within #{@ready_timeout} ms; stderr:\n#{File.read!(log_path)}"
        )
    end
  end

  defp extra_code_paths do
    otp_root = :code.root_dir()
    for p <- :code.get_path(), not List.starts_with?(p, otp_root), p != ~c".", do: p
  end

  defp track(os_pid, match, kind) do
    entry = %{os_pid: os_pid, match: match, kind: kind, runner: String.to_integer(System.pid())}
    File.write!(Path.join(procs_dir(), Integer.to_string(os_pid)), :erlang.term_to_binary(entry))
  end

  defp read_tracked(path) do
    with {:ok, bin} <- File.read(path),
         {:ok, %{os_pid: _, match: _, runner: _} = entry} <- safe_decode(bin) do
      {:ok, entry}
    else
      _ -> :error
    end
  end

  defp safe_decode(bin) do
    {:ok, :erlang.binary_to_term(bin, [:safe])}
  rescue
    _ -> :error
  end

  defp stop_os(os_pid, match) do
    if os_alive?(os_pid, match), do: kill9(os_pid)
    File.rm(Path.join(procs_dir(), Integer.to_string(os_pid)))
    :ok
  end

  defp kill9(os_pid) do
    System.cmd("kill", ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
    true
  end
end
