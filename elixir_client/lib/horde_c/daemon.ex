defmodule HordeC.Daemon do
  @moduledoc """
  Runs a local `hordec` C node as an OS process owned by this BEAM node.

  Put it first in your application's supervision tree, before the HordeC objects that use it:

      children = [
        HordeC.Daemon,
        {HordeC.Registry, name: MyApp.Registry, keys: :unique, hordec: :local},
        {HordeC.DynamicSupervisor, name: MyApp.Sup, strategy: :one_for_one, hordec: :local},
        {HordeC.Crdt, name: MyApp.Map, hordec: :local}
      ]

      Supervisor.start_link(children, strategy: :rest_for_one)

  (`config :horde_c, hordec: :local` makes `:local` the default, so the `hordec:` options can go.)
  With `:rest_for_one`, the objects after the daemon restart with it and re-attach at once.

  What it does:

    * **Starts** the `hordec` executable (`executable/1`) as an Erlang port and returns from
      `start_link/1` once hordec is ready (it printed its ready line), so the children after it
      can attach.
    * **Same cookie as this node**, written to hordec's stdin (`--cookie-file -`): it never
      appears on a command line that `ps` shows.
    * **Node name derived from this node's**: `app@host` runs `hordec_app@host` (`local_node/0`;
      `:name` overrides it). One daemon per BEAM node.
    * **Logs forwarded to `Logger`** at hordec's level (metadata `hordec: node`).
    * **Restarted when it dies**: the process exits with `{:hordec_exit, status}` and its
      supervisor starts a fresh hordec (supervisor semantics: restart intensity applies).
    * **Never outlives the BEAM**: hordec runs with `--watch-stdin` and stops when its stdin
      closes — which the kernel does whatever way this node goes, `kill -9` included. When the
      daemon is stopped by its supervisor, hordec gets SIGTERM (and hands its C workers over),
      then SIGKILL after `:shutdown_timeout`.
    * **Discovery**: the daemons of connected BEAM nodes find each other (a hello to the
      registered `HordeC.Daemon` of each node that comes up) and connect their hordec nodes.
      Every `HordeC.Registry` and `HordeC.DynamicSupervisor` started with `hordec: :local` and
      `members: :auto` adds the replicas on the other daemons to its members; every
      `HordeC.Crdt` started with `hordec: :local` sets them as its neighbours. A cluster of BEAM
      nodes thus gets a cluster of hordec nodes without naming any of them.

  Options:

    * `:name` – the hordec node name (an atom `name@host`); default `local_node/0`'s derivation.
    * `:executable` – path of `hordec`; default `executable/1`'s lookup.
    * `:args` – extra command-line arguments (strings), e.g. `["--registry", "MyApp.Registry"]`.
    * `:log_level` – hordec's `--log-level` (`:error`, `:warn`, `:info`, `:debug`; default `:info`).
    * `:ticktime` – hordec's `--ticktime` in seconds; default this node's `net_ticktime`.
    * `:port` – the distribution listen port; default any free port.
    * `:ready_timeout` – how long to wait for hordec's ready line (default 15_000 ms).
    * `:shutdown_timeout` – between SIGTERM and SIGKILL when stopping (default 5_000 ms).
    * `:discovery` – find the daemons of connected BEAM nodes (default `true`).

  The application environment key `:daemon` (`config :horde_c, daemon: [...]`) gives defaults
  for these options.
  """

  use GenServer
  require Logger

  alias HordeC.Telemetry

  @joins HordeC.Daemon.Joins
  @ready ~r/^hordec ready node=(\S+) port=(\d+)/
  @levels %{"error" => :error, "warn" => :warning, "info" => :info, "debug" => :debug}

  @typedoc "What `status/0` returns."
  @type status :: %{
          node: node(),
          os_pid: pos_integer(),
          port: non_neg_integer(),
          executable: Path.t(),
          peers: %{node() => node()},
          started_at: integer()
        }

  # ------------------------------------------------------------------ API

  @doc "A child specification; the shutdown leaves hordec time to hand its C workers over."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts = options(opts)

    %{
      id: __MODULE__,
      start: {__MODULE__, :start_link, [opts]},
      shutdown: Keyword.get(opts, :shutdown_timeout, 5_000) + 1_000
    }
  end

  @doc "Starts hordec and returns once it is ready. Registered locally as `HordeC.Daemon`."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    GenServer.start_link(__MODULE__, options(opts), name: __MODULE__)
  end

  @doc """
  The node name of this BEAM node's daemon: the running daemon's, else the one it would get
  (`:name` in `config :horde_c, daemon: [...]`, else `hordec_<name>@<host>` from this node's
  `name@host`). Raises when this node is not distributed.
  """
  @spec local_node() :: node()
  def local_node do
    case :persistent_term.get({__MODULE__, :node}, nil) do
      nil -> Keyword.get_lazy(options([]), :name, &derived_name/0)
      node -> node
    end
  end

  @doc """
  The hordec executable: `opts[:executable]`, else `config :horde_c, executable: path`, else
  `$HORDEC_BIN`, else `priv/hordec` of the `:horde_c` application (where `mix deps.compile`
  builds it).
  """
  @spec executable(keyword()) :: Path.t()
  def executable(opts \\ []) do
    Keyword.get(opts, :executable) || Application.get_env(:horde_c, :executable) ||
      case System.get_env("HORDEC_BIN") do
        bin when bin not in [nil, ""] -> bin
        _ -> Application.app_dir(:horde_c, "priv/hordec")
      end
  end

  @doc "The running daemon's state (`nil` when no daemon runs on this node)."
  @spec status() :: status() | nil
  def status do
    GenServer.call(__MODULE__, :status)
  catch
    :exit, _ -> nil
  end

  @doc "The hordec nodes of the other BEAM nodes' daemons found so far (empty without a daemon)."
  @spec peers() :: [node()]
  def peers do
    case status() do
      nil -> []
      %{peers: peers} -> peers |> Map.values() |> Enum.sort()
    end
  end

  @doc """
  Resolves a `:hordec` option: `:local` (also inside a list) is `local_node/0`; `nil` reads the
  application environment (`config :horde_c, hordec: ...`). Returns `{value, local?}`.
  """
  @spec resolve(term()) :: {term(), boolean()}
  def resolve(nil), do: resolve(Application.get_env(:horde_c, :hordec))
  def resolve(:local), do: {local_node(), true}

  def resolve([_ | _] = list) do
    if :local in list,
      do: {Enum.map(list, &if(&1 == :local, do: local_node(), else: &1)), true},
      else: {list, false}
  end

  def resolve(other), do: {other, false}

  @doc false
  # The `:hordec` option of a registry or supervisor (`options`), resolved as resolve/1 does, as
  # the list of hordec nodes it attaches to (duplicates dropped). Raises ArgumentError otherwise.
  @spec hordecs!(keyword()) :: [node()]
  def hordecs!(options) do
    {hordec, _local?} = resolve(Keyword.get(options, :hordec))

    hordecs =
      case hordec do
        node when is_atom(node) and node != nil -> [node]
        [_ | _] = nodes -> if Enum.all?(nodes, &(is_atom(&1) and &1 != nil)), do: nodes
        _ -> nil
      end

    unless hordecs do
      raise ArgumentError,
            "expected :hordec (or config :horde_c, :hordec) to be a hordec node or a " <>
              "non-empty list of them, got: #{inspect(hordec)}"
    end

    Enum.uniq(hordecs)
  end

  @doc false
  # Called by a HordeC object's own process (a registry's or supervisor's attachment, a CRDT)
  # started with `hordec: :local`: the daemon then keeps its members (or neighbours) in step with
  # the daemons it discovers. `kind` is `:attachment` or `:crdt`.
  @spec join(:attachment | :crdt, atom()) :: :ok
  def join(kind, name) when kind in [:attachment, :crdt] and is_atom(name) do
    case Registry.register(@joins, :joined, {kind, name}) do
      {:ok, _} -> :ok
      # The :horde_c application is not started: nothing to join.
      {:error, _} -> :ok
    end

    case Process.whereis(__MODULE__) do
      nil -> :ok
      pid -> send(pid, {:joined, kind, name})
    end

    :ok
  rescue
    ArgumentError -> :ok
  end

  # ------------------------------------------------------------------ the process

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)

    unless Node.alive?() do
      raise ArgumentError,
            "HordeC.Daemon needs a distributed node: start the BEAM with --name or --sname"
    end

    name = Keyword.get_lazy(opts, :name, &derived_name/0)
    exe = executable(opts)

    unless File.regular?(exe) do
      raise ArgumentError,
            "HordeC.Daemon: hordec executable not found at #{exe} " <>
              "(mix deps.compile builds it into priv/; or set :executable / HORDEC_BIN)"
    end

    args =
      ["--name", Atom.to_string(name), "--cookie-file", "-", "--watch-stdin"] ++
        ["--log-level", opts |> Keyword.get(:log_level, :info) |> to_string()] ++
        ["--ticktime", Integer.to_string(Keyword.get_lazy(opts, :ticktime, &ticktime/0))] ++
        if(opts[:port], do: ["--port", Integer.to_string(opts[:port])], else: []) ++
        Enum.map(Keyword.get(opts, :args, []), &to_string/1)

    started = System.monotonic_time()

    port =
      Port.open({:spawn_executable, exe}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        :use_stdio,
        {:line, 16_384},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    # The cookie goes through the pipe, never on the command line (`ps` shows that).
    Port.command(port, [Atom.to_string(Node.get_cookie()), "\n"])
    :persistent_term.put({__MODULE__, :node}, name)

    case await_ready(port, name, Keyword.get(opts, :ready_timeout, 15_000)) do
      {:ok, dist_port} ->
        Telemetry.execute(
          [:horde_c, :daemon, :start],
          %{system_time: System.system_time(), duration: System.monotonic_time() - started},
          %{node: name, os_pid: os_pid, executable: exe}
        )

        Logger.info("HordeC.Daemon: #{name} ready (os pid #{os_pid}, port #{dist_port})")

        s = %{
          node: name,
          port: port,
          os_pid: os_pid,
          dist_port: dist_port,
          exe: exe,
          peers: %{},
          discovery: Keyword.get(opts, :discovery, true),
          shutdown_timeout: Keyword.get(opts, :shutdown_timeout, 5_000),
          started_at: System.system_time(:millisecond)
        }

        if s.discovery, do: start_discovery(s)
        # Objects that joined before this daemon (re)started: none of their peers is known yet,
        # but a Crdt or registry restarted with it re-joins; nothing to do until a peer appears.
        {:ok, s}

      {:error, reason} ->
        stop_os(port, os_pid, 0)
        {:stop, reason}
    end
  end

  defp await_ready(port, name, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    await_ready(port, name, deadline, [])
  end

  defp await_ready(port, name, deadline, partial) do
    wait = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, {:eol, line}}} ->
        line = IO.iodata_to_binary([Enum.reverse(partial), line])

        case Regex.run(@ready, line) do
          [_, _node, dist_port] ->
            {:ok, String.to_integer(dist_port)}

          nil ->
            log_line(name, line)
            await_ready(port, name, deadline, [])
        end

      {^port, {:data, {:noeol, chunk}}} ->
        await_ready(port, name, deadline, [chunk | partial])

      {^port, {:exit_status, status}} ->
        {:error, {:hordec_exit, status}}
    after
      wait -> {:error, {:hordec_not_ready, name}}
    end
  end

  @impl true
  def handle_call(:status, _from, s) do
    {:reply,
     %{
       node: s.node,
       os_pid: s.os_pid,
       port: s.dist_port,
       executable: s.exe,
       peers: s.peers,
       started_at: s.started_at
     }, s}
  end

  @impl true
  def handle_info({port, {:data, {_eol, line}}}, %{port: port} = s) do
    log_line(s.node, line)
    {:noreply, s}
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = s) do
    Logger.error("HordeC.Daemon: #{s.node} (os pid #{s.os_pid}) exited with status #{status}")
    exited(s, status)
    {:stop, {:hordec_exit, status}, %{s | port: nil}}
  end

  # ---- discovery: a hello to the daemon of every BEAM node that is (or comes) up

  def handle_info({:nodeup, node, _info}, s) do
    send({__MODULE__, node}, hello(s, :ask))
    {:noreply, s}
  end

  # A BEAM node gone: if its daemon is gone too (it dies with its node), its replicas leave the
  # members (see forget_peer/4).
  def handle_info({:nodedown, node, _info}, s) do
    case Map.pop(s.peers, node) do
      {nil, _} ->
        {:noreply, s}

      {peer, peers} ->
        s = %{s | peers: peers}
        me = s.node
        rest = Map.values(peers)
        spawn_link(fn -> forget_peer(me, peer, node, rest) end)
        {:noreply, s}
    end
  end

  def handle_info({:hordec_daemon_hello, from, peer, mode}, s)
      when is_pid(from) and is_atom(peer) do
    if mode == :ask, do: send(from, hello(s, :reply))
    beam = node(from)

    if beam == node() or peer == s.node or Map.get(s.peers, beam) == peer do
      {:noreply, s}
    else
      Logger.info("HordeC.Daemon: found #{peer} (the daemon of #{beam})")

      Telemetry.execute(
        [:horde_c, :daemon, :peer_discovered],
        %{system_time: System.system_time()},
        %{node: s.node, peer: peer, beam_node: beam}
      )

      s = %{s | peers: Map.put(s.peers, beam, peer)}
      connect_peer(s, peer)
      for {kind, name} <- joined(), do: sync_object(s, kind, name)
      {:noreply, s}
    end
  end

  def handle_info({:joined, kind, name}, s) do
    if map_size(s.peers) > 0, do: sync_object(s, kind, name)
    {:noreply, s}
  end

  # Helper tasks (connects, member updates) report nothing back.
  def handle_info({:EXIT, _pid, _reason}, s), do: {:noreply, s}
  def handle_info(_msg, s), do: {:noreply, s}

  @impl true
  def terminate(_reason, %{port: nil}), do: :ok

  def terminate(_reason, s) do
    status = stop_os(s.port, s.os_pid, s.shutdown_timeout, s.node)
    exited(s, status)
    :ok
  end

  # ------------------------------------------------------------------ internals

  defp options(opts) do
    Keyword.merge(Application.get_env(:horde_c, :daemon, []), opts)
  end

  defp derived_name do
    case node() do
      :nonode@nohost ->
        raise ArgumentError,
              "hordec: :local needs a distributed node: start the BEAM with --name or --sname"

      node ->
        [name, host] = node |> Atom.to_string() |> String.split("@", parts: 2)
        # hordec node names are letters, digits, '_' and '-' before the '@'.
        :"hordec_#{String.replace(name, ~r/[^A-Za-z0-9_-]/, "_")}@#{host}"
    end
  end

  defp ticktime do
    case :net_kernel.get_net_ticktime() do
      t when is_integer(t) -> t
      {:ongoing_change_to, t} -> t
      _ -> 60
    end
  end

  defp log_line(node, line) do
    {level, msg} =
      case String.split(line, " hordec: ", parts: 2) do
        [lvl, msg] when is_map_key(@levels, lvl) -> {@levels[lvl], msg}
        # What hordec prints before it exits with an error (bad option, port in use...).
        _ -> if String.starts_with?(line, "hordec: "), do: {:error, line}, else: {:info, line}
      end

    Logger.log(level, "#{node}: #{msg}", hordec: node)
  end

  defp exited(s, status) do
    Telemetry.execute(
      [:horde_c, :daemon, :exit],
      %{system_time: System.system_time()},
      %{node: s.node, os_pid: s.os_pid, status: status}
    )
  end

  # SIGTERM (hordec hands its C workers over and exits), SIGKILL if it takes too long. Returns the
  # exit status, or :killed.
  defp stop_os(port, os_pid, timeout, node \\ nil) do
    signal(os_pid, "TERM")
    stop_wait(port, os_pid, System.monotonic_time(:millisecond) + timeout, node)
  end

  defp stop_wait(port, os_pid, deadline, node) do
    receive do
      {^port, {:data, {_, line}}} ->
        if node, do: log_line(node, line)
        stop_wait(port, os_pid, deadline, node)

      {^port, {:exit_status, status}} ->
        status
    after
      max(deadline - System.monotonic_time(:millisecond), 0) ->
        signal(os_pid, "KILL")

        receive do
          {^port, {:exit_status, _}} -> :killed
        after
          1_000 -> :killed
        end
    end
  end

  defp signal(os_pid, sig) do
    System.cmd("kill", ["-#{sig}", Integer.to_string(os_pid)], stderr_to_stdout: true)
  rescue
    # No kill(1) in PATH: closing stdin stops hordec too (--watch-stdin).
    ErlangError -> :ok
  end

  defp hello(s, mode), do: {:hordec_daemon_hello, self(), s.node, mode}

  defp start_discovery(s) do
    :net_kernel.monitor_nodes(true, node_type: :visible)
    for n <- Node.list(), do: send({__MODULE__, n}, hello(s, :ask))
  end

  defp connect_peer(s, peer) do
    me = s.node
    spawn_link(fn -> HordeC.Node.call(me, {:connect, peer}, 10_000) end)
  end

  defp joined do
    for {_pid, obj} <- Registry.lookup(@joins, :joined), do: obj
  rescue
    ArgumentError -> []
  end

  # Brings one object's members (or neighbours) up to the daemons known now; in a helper process,
  # since the calls wait for the object's replica.
  defp sync_object(s, kind, name) do
    peers = Map.values(s.peers)
    spawn_link(fn -> sync(kind, name, peers) end)
  end

  # When a BEAM node dies its daemon dies with it, and with both gone nobody removes the entries its
  # processes registered through that daemon (a dead hordec deletes nothing: its client would fail
  # over and re-assert them, docs/registry.md §5). So, as Horde does for a node that leaves with
  # members: :auto, its replicas leave the members, which removes what was attached through them
  # everywhere. Only once its hordec is unreachable (it hands its C workers over for up to 3 s
  # first) and its BEAM node has not come back; a partition healed later re-adds it (nodeup,
  # hello) and its clients re-attach and re-assert.
  defp forget_peer(me, peer, beam, remaining) do
    if peer_gone?(peer, beam, 20) do
      Logger.info(
        "HordeC.Daemon: #{peer} is gone with #{beam}: removing its replicas from the members"
      )

      Telemetry.execute(
        [:horde_c, :daemon, :peer_lost],
        %{system_time: System.system_time()},
        %{node: me, peer: peer, beam_node: beam}
      )

      for {kind, name} <- joined() do
        case kind do
          :attachment -> remove_member(name, {name, peer})
          :crdt -> sync(:crdt, name, remaining)
        end
      end
    end
  end

  defp peer_gone?(_peer, _beam, 0), do: false

  defp peer_gone?(peer, beam, tries) do
    cond do
      beam in Node.list() -> false
      HordeC.Node.ping(peer, 1_000) == :pang -> true
      true -> Process.sleep(500)
    end
    |> case do
      :ok -> peer_gone?(peer, beam, tries - 1)
      gone? -> gone?
    end
  end

  defp remove_member(name, member) do
    current = HordeC.Attachment.members(name)

    if member in current,
      do: HordeC.Attachment.call(name, {:set_members, current -- [member]}, 15_000)
  catch
    _, _ -> :ok
  end

  defp sync(:attachment, name, peers) do
    HordeC.Attachment.call(name, {:add_members, for(p <- peers, do: {name, p})}, 15_000)
  catch
    _, _ -> :ok
  end

  defp sync(:crdt, name, peers) do
    {replica, _} = HordeC.Crdt.replica(name)
    HordeC.Crdt.set_neighbours(name, for(p <- peers, do: {replica, p}))
  catch
    _, _ -> :ok
  end
end
