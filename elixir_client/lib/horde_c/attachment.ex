defmodule HordeC.Attachment do
  @moduledoc """
  The BEAM side of a replicated core hosted by `hordec` nodes: attach, mirror, fail over.

  One process per BEAM node and replicated object (a registry, a supervisor), registered
  under the object's name, does the parts that are the same for every kind of object:

    * **attach** to the first reachable `hordec` node of its list: create the replica there
      (the callback's start request to the node's control process), send the callback's attach
      request, monitor the replica by name, subscribe to its change stream;
    * **mirror** the replica's observable map: the snapshot (in parts), then the diff batches,
      checked by epoch and sequence number (`HordeC.Mirror`'s protocol code, with
      `storage: :owner`); a gap or anything unexpected resubscribes, and the fresh snapshot is
      handed to the callback, which compares it with what it holds (the callback owns the
      storage: nothing is mirrored twice);
    * **fail over** when the replica goes away (its node down or cut off, or the replica
      stopped): attach to the next node of the list with a fresh attach request (the callback
      re-asserts what its node owns), resubscribe; with no node reachable, retry with backoff;
    * keep a replica on every other listed node (so a failover finds the data there), and the
      replicated **membership** (`{:member, {name, node}}` entries), which `HordeC.Cluster`
      reads and writes;
    * the **write path** for callers (`call/4`): the caller calls this process, which forwards
      the request to the attached replica without a monitor of its own, sends it again after a
      failover, and answers the caller when the replica's reply comes, i.e. once the local mirror
      shows the write (read-your-writes, see `call/4`).

  The object-specific parts are callbacks (the registry's are in `lib/horde_c/registry/mirror.ex`,
  the supervisor's in `lib/horde_c/dynamic_supervisor/mirror.ex`).

  ## Tables

  The attachment owns one named ETS table, `info_table(name)`, readable by any process:
  `{:attachment, addr | nil, gen}` (the replica writers use, published once its snapshot is
  loaded; `gen` counts attaches),
  `{{:member, {name, node}}, true}` for the membership, and whatever the callback puts there
  (it receives the table's name).
  """

  use GenServer
  require Logger

  alias HordeC.Mirror

  @typedoc "A replica: its registered name and the hordec node it runs on."
  @type addr :: {atom(), node()}

  @typedoc "An entry of the replica's observable map, or a change to it."
  @type entry :: {term(), term()}
  @type diff :: {:add, term(), term()} | {:remove, term()}

  @typedoc "Why the callback is given a snapshot: first attach, failover, or resync on one replica."
  @type snapshot_reason :: :initial | :failover | :resync

  @typedoc """
  What the callback's `init/1` returns besides its state:

    * `:name` – the registered name of this process and of the replica;
    * `:hordecs` – the hordec nodes to attach to, in order of preference;
    * `:members` – `:auto` (add `{name, h}` for every listed node to the membership at each
      attach; never removes a member) or an explicit `[{name, node}]` set at the first attach;
    * `:initial_requests` – requests sent to the replica once, after the first attach (e.g.
      `{:put_meta, k, v}`), before `start_link` returns;
    * `:attach_timeout` – per request while attaching (default 5000 ms);
    * `:drop_seq` – test hook: drop the stream message with this sequence number once.
  """
  @type spec :: %{
          required(:name) => atom(),
          required(:hordecs) => [node()],
          optional(:members) => :auto | [addr()],
          optional(:initial_requests) => [term()],
          optional(:attach_timeout) => timeout(),
          optional(:drop_seq) => pos_integer() | nil
        }

  @doc "Builds the object's storage (its ETS tables; the info table already exists) and its state."
  @callback init(arg :: term(), info_table :: atom()) ::
              {:ok, spec(), state :: term()} | :ignore | {:stop, term()}

  @doc "The request to the control process `{:hordec, node}` that creates (or finds) the replica."
  @callback start_request(state :: term()) :: term()

  @doc """
  The attach request sent to a replica (`reason` is `:initial` or `:failover`). May stash in the
  state what it asserted, to reconcile with the snapshot that follows.
  """
  @callback attach_request(reason :: :initial | :failover, state :: term()) ::
              {term(), state :: term()}

  @doc "Checks the attach reply. An error makes the attachment try the next node."
  @callback attached(reply :: term(), addr(), state :: term()) ::
              {:ok, state :: term()} | {:error, term()}

  @doc """
  A complete snapshot of the replica's observable map (member entries removed). The callback
  compares it with what it holds and applies the difference.
  """
  @callback handle_snapshot([entry()], snapshot_reason(), addr(), state :: term()) ::
              state :: term()

  @doc "A batch of diffs, in order (member entries removed)."
  @callback handle_diffs([diff()], addr(), state :: term()) :: state :: term()

  @doc "Any other message (exit signals of links it made, timers). `addr` is nil while detached."
  @callback handle_info(msg :: term(), addr() | nil, state :: term()) :: state :: term()

  @doc "Called before a write is forwarded or a barrier answered: send what the replica must see first."
  @callback flush(addr() | nil, state :: term()) :: state :: term()

  @doc """
  Called when the replica `addr` exists and is about to receive the attach request: messages
  sent to it from here arrive before that request (e.g. reports the previous replica may have
  lost, which the attach must not contradict).
  """
  @callback before_attach(addr(), state :: term()) :: state :: term()

  @doc """
  Whether the replica no longer holds this attachment's record (it dropped it: attach again),
  judged from a snapshot or from a batch of diffs. Default: the registry's `{:client, pid}`
  record (docs/registry.md §5) is missing from the snapshot, or removed by a diff.
  """
  @callback attach_lost?({:snapshot, [entry()]} | {:diffs, [diff()]}, state :: term()) ::
              boolean()

  @doc "The attachment process is stopping (`addr` is nil while detached)."
  @callback terminate(reason :: term(), addr() | nil, state :: term()) :: term()

  @optional_callbacks flush: 2, before_attach: 2, attach_lost?: 2, terminate: 3

  @default_attach_timeout 5_000
  @ensure_interval 1_000
  @retry_min 100
  @retry_max 2_000
  # A call whose reply nobody waits for: hordec drops the reply (docs/protocol.md §1).
  @async_tag :"$hordec_noreply"
  # Writes sent in one message at most (a burst larger than this goes as several).
  @batch_max 256

  # ------------------------------------------------------------------ API for callers

  @doc "The name of the info table of the attachment registered as `name`."
  @spec info_table(atom()) :: atom()
  def info_table(name) when is_atom(name) do
    # Cached by the attachment's init: building the atom costs more than a whole write's reads.
    case :persistent_term.get({__MODULE__, :info_table, name}, nil) do
      nil -> :"#{name}.Info"
      table -> table
    end
  end

  @doc """
  Starts an attachment process with callback module `mod`, registered as `opts[:name]`.

  `start_link` returns once the first attach and the first snapshot are done (or, when no
  hordec node is reachable, at once: the process then keeps trying in the background and
  writes wait for it within their timeout).
  """
  @spec start_link(module(), term(), keyword()) :: GenServer.on_start()
  def start_link(mod, arg, opts), do: GenServer.start_link(__MODULE__, {mod, arg}, opts)

  @doc """
  Performs a write: `request` goes to the replica the attachment `name` is attached to, and its
  reply is returned.

  The caller makes a local `GenServer.call` to the attachment, which forwards the request to its
  replica asynchronously (no monitor per request: it monitors the replica already) and answers
  the caller when the reply comes back.

  * If that replica is gone (its node down or cut off, or the replica stopped), the attachment
    fails over and sends the request again (every request of the protocol is idempotent).
    `{:error, :not_attached}` makes it attach again (to the same replica first), then repeat.
  * Read-your-writes: the replica sends a request's diffs before its reply, over the same
    connection, so when the attachment handles the reply its tables already show the write
    (during a resync the answer waits until the snapshot is loaded).
  * When no replica can be reached within `timeout`, exits with `{:noconnection, where}`; a
    replica that does not answer in time exits with `{:timeout, where}` (`where` from the
    `:where` option, default `{HordeC.Attachment, :call, [name, request]}`), like
    `GenServer.call/3`. A request whose caller has given up is not sent again.
  """
  @spec call(atom(), term(), timeout(), keyword()) :: term()
  def call(name, request, timeout, opts \\ []) do
    GenServer.call(name, {:write, request, deadline(timeout)}, timeout)
  catch
    :exit, {:timeout, {GenServer, :call, _}} ->
      # Unattached at the deadline: the request could not reach any replica.
      case current(name) do
        {nil, _} -> exit({:noconnection, where(name, request, opts)})
        _ -> exit({:timeout, where(name, request, opts)})
      end

    :exit, {:noproc, {GenServer, :call, _}} ->
      # Raises "unknown registry" when the attachment is gone with its table.
      _ = current(name)
      exit({:noproc, where(name, request, opts)})
  end

  defp where(name, request, opts),
    do: Keyword.get(opts, :where, {__MODULE__, :call, [name, request]})

  @doc """
  Waits until the local mirror of `name` has processed everything its replica sent before now
  (what a write returning has already waited for). Returns `:ok`, or `:timeout`.
  """
  @spec sync(atom(), timeout()) :: :ok | :timeout
  def sync(name, timeout \\ 5_000) do
    {_addr, gen} = current(name)

    case barrier(name, gen, deadline(timeout)) do
      :timeout -> :timeout
      _ -> :ok
    end
  end

  @doc "The replica `name` is attached to now, or nil while it is failing over."
  @spec replica(atom()) :: addr() | nil
  def replica(name), do: name |> current() |> elem(0)

  @doc "The hordec nodes the attachment `name` uses, in order of preference."
  @spec hordecs(atom()) :: [node()]
  def hordecs(name), do: lookup_info(name, :hordecs, [])

  @doc "The members of the replicated object, from the local mirror, sorted."
  @spec members(atom()) :: [addr()]
  def members(name) do
    name
    |> info_table()
    |> :ets.match({{:member, :"$1"}, :_})
    |> Enum.map(&hd/1)
    |> Enum.sort()
  rescue
    ArgumentError -> raise ArgumentError, "unknown registry: #{inspect(name)}"
  end

  @doc """
  Sends `request` to the replica `addr` as a `GenServer.call` whose reply is dropped: for the
  attachment's own bookkeeping (e.g. `{:pids_down, ...}`), which must not block it.
  """
  @spec cast_replica(addr() | pid() | nil, term()) :: :ok
  def cast_replica(nil, _request), do: :ok

  def cast_replica(addr, request) do
    send(addr, {:"$gen_call", {self(), @async_tag}, request})
    :ok
  end

  @doc """
  `cast_replica/2` for many requests at once: one `{'$gen_calls', Self, Calls}` message (the
  replica takes each as if it came alone, in order), and one batch of replies, dropped.
  """
  @spec cast_replica_many(addr() | pid() | nil, [term()]) :: :ok
  def cast_replica_many(nil, _requests), do: :ok
  def cast_replica_many(_addr, []), do: :ok
  def cast_replica_many(addr, [request]), do: cast_replica(addr, request)

  def cast_replica_many(addr, requests) do
    send(addr, {:"$gen_calls", self(), for(r <- requests, do: {@async_tag, r})})
    :ok
  end

  defp current(name) do
    case :ets.lookup(info_table(name), :attachment) do
      [{:attachment, addr, gen}] -> {addr, gen}
      [] -> {nil, 0}
    end
  rescue
    ArgumentError -> raise ArgumentError, "unknown registry: #{inspect(name)}"
  end

  defp lookup_info(name, key, default) do
    case :ets.lookup(info_table(name), key) do
      [{^key, value}] -> value
      [] -> default
    end
  rescue
    ArgumentError -> raise ArgumentError, "unknown registry: #{inspect(name)}"
  end

  defp barrier(name, gen, deadline) do
    GenServer.call(name, {:barrier, gen}, remaining(deadline))
  catch
    # The write itself succeeded: only its visibility could not be confirmed in time.
    :exit, {:timeout, _} -> :timeout
  end

  defp deadline(:infinity), do: :infinity
  defp deadline(ms) when is_integer(ms) and ms >= 0, do: System.monotonic_time(:millisecond) + ms

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  # ------------------------------------------------------------------ the process

  @impl true
  def init({mod, arg}) do
    Process.flag(:trap_exit, true)
    name = self_name()
    table = :"#{name}.Info"
    key = {__MODULE__, :info_table, name}
    # Same value again: no update (and no global GC) when a registry is restarted.
    if :persistent_term.get(key, nil) != table, do: :persistent_term.put(key, table)
    :ets.new(table, [:set, :protected, :named_table, read_concurrency: true])

    case mod.init(arg, table) do
      {:ok, spec, mst} ->
        :ets.insert(table, [{:attachment, nil, 0}, {:hordecs, spec.hordecs}])
        :net_kernel.monitor_nodes(true, node_type: :all)
        # Attached through this node's HordeC.Daemon with :auto members: the daemon adds the
        # replicas of the daemons it discovers (HordeC.Daemon.join/2).
        if discover?(spec), do: HordeC.Daemon.join(:attachment, spec.name)

        s = %{
          mod: mod,
          mst: mst,
          name: spec.name,
          table: table,
          hordecs: spec.hordecs,
          members: Map.get(spec, :members, :auto),
          initial_requests: Map.get(spec, :initial_requests, []),
          attach_timeout: Map.get(spec, :attach_timeout, @default_attach_timeout),
          drop_seq: Map.get(spec, :drop_seq),
          addr: nil,
          gen: 0,
          mon: nil,
          mirror: nil,
          phase: :detached,
          reason: :initial,
          first_done: false,
          barriers: [],
          ensured: MapSet.new(),
          ensuring: nil,
          retry: @retry_min,
          retry_timer: nil,
          # The last {:reattach, gen} acted on, and the wait before the next one (backoff).
          reattached: {System.monotonic_time(:millisecond) - 2 * @retry_max, 0},
          refused: [],
          # Writes: forwarded and unanswered (tag => {from, request, deadline}), waiting for an
          # attachment (newest first), and answered while the mirror resyncs.
          pending: %{},
          queued: [],
          held: [],
          # Forwarded writes not sent yet ({tag, request}, newest first): they leave together once
          # the writes already in the mailbox are in (see forward/4).
          outbox: [],
          outbox_n: 0,
          has_flush: function_exported?(mod, :flush, 2)
        }

        s = attach_round(s, s.hordecs, :initial)

        case s do
          %{phase: :detached, refused: [{:refused, reason} | _]}
          when length(s.refused) == length(s.hordecs) ->
            # Every node answered, and refused (e.g. the replica runs with other keys): a
            # configuration error, not an outage.
            {:stop, reason}

          _ ->
            s = if s.phase != :detached, do: finish_sync_in_init(s), else: s
            Process.send_after(self(), :ensure_replicas, 0)
            {:ok, s}
        end

      :ignore ->
        :ignore

      {:stop, reason} ->
        {:stop, reason}
    end
  end

  # The name this process was started under (GenServer registers it before init runs).
  defp self_name do
    case Process.info(self(), :registered_name) do
      {:registered_name, name} when is_atom(name) -> name
      _ -> raise ArgumentError, "a HordeC attachment must be started with a :name"
    end
  end

  # In init: consume the first snapshot from the mailbox, do the first-attach writes and consume
  # their diffs, so that start_link returns with the mirror loaded.
  defp finish_sync_in_init(s) do
    s = drain(s, s.attach_timeout)
    if s.phase == :live, do: drain(s, 0), else: s
  end

  defp drain(%{mirror: nil} = s, _timeout), do: s

  defp drain(s, timeout) do
    epoch = Mirror.epoch(s.mirror)

    receive do
      {:hordec_stream, _name, ^epoch, _seq, _body} = msg ->
        {:noreply, s} = handle_info(msg, s)
        if s.phase == :live and timeout != 0, do: drain(s, 0), else: drain(s, timeout)
    after
      timeout -> s
    end
  end

  @impl true
  def handle_call({:write, request, deadline}, from, %{phase: :live} = s),
    do: {:noreply, forward(flush(s), from, request, deadline)}

  def handle_call({:write, request, deadline}, from, s),
    do: {:noreply, %{s | queued: [{from, request, deadline} | s.queued]}}

  def handle_call({:barrier, gen}, from, s) do
    cond do
      gen != s.gen -> {:reply, :moved, s}
      s.phase == :live or s.phase == :detached -> {:reply, :ok, flush(s)}
      true -> {:noreply, %{s | barriers: [from | s.barriers]}}
    end
  end

  def handle_call(:state, _from, s), do: {:reply, Map.drop(s, [:mst]), s}

  # A request meant for a replica (a `:hordec` list naming a BEAM node running this object too).
  def handle_call(_request, _from, s), do: {:reply, {:error, :not_a_replica}, s}

  @impl true
  # The stream protocol (epochs, sequence numbers, snapshot parts) is HordeC.Mirror's; with
  # storage: :owner it keeps no copy of the map, the callback holds it in its own shape.
  def handle_info({:hordec_stream, _, _, _, _} = msg, %{mirror: mirror} = s) when mirror != nil do
    case Mirror.handle_message(mirror, msg) do
      {:ok, mirror, []} ->
        {:noreply, %{s | mirror: mirror}}

      {:ok, mirror, diffs} ->
        {:noreply, apply_diffs(diffs, %{s | mirror: mirror})}

      {:snapshot, mirror, entries} ->
        {:noreply, load_snapshot(entries, %{s | mirror: mirror})}

      {:resync, mirror} ->
        Logger.debug("#{inspect(s.name)}: lost track of the stream, resubscribing")
        {:noreply, resubscribe(%{s | mirror: mirror})}

      :ignore ->
        {:noreply, s}
    end
  end

  # A message of a replica we left: superseded by the new replica's snapshot.
  def handle_info({:hordec_stream, _name, _epoch, _seq, _body}, s), do: {:noreply, s}

  def handle_info({:DOWN, mon, :process, _, reason}, %{mon: mon} = s) do
    Logger.warning(
      "#{inspect(s.name)}: replica #{inspect(s.addr)} went away (#{inspect(reason)}), failing over"
    )

    {_, node} = s.addr
    s = detach(s)
    {:noreply, attach_round(s, rotate_after(s.hordecs, node), :failover)}
  end

  def handle_info({@async_tag, _reply}, s), do: {:noreply, s}

  def handle_info(:"$hordec_send_outbox", s), do: {:noreply, send_outbox(s)}

  # The replies to a batch of forwarded writes, in order (each as below).
  def handle_info({:"$gen_replies", replies}, s) when is_list(replies) do
    {:noreply, Enum.reduce(replies, s, fn {tag, reply}, s -> handle_reply(tag, reply, s) end)}
  end

  def handle_info({tag, reply}, s) when is_reference(tag),
    do: {:noreply, handle_reply(tag, reply, s)}

  def handle_info({:reattach, gen}, %{gen: gen, phase: :live} = s) do
    # A replica that keeps dropping the record (or a client and replica that disagree on its
    # shape) must not make this a tight loop: attaching again soon after the last time waits.
    now = System.monotonic_time(:millisecond)
    {last, delay} = s.reattached

    cond do
      now - last >= @retry_max * 2 ->
        s = %{s | reattached: {now, 0}}
        {:noreply, reattach(s, "its attach record left the replica")}

      now - last >= delay ->
        s = %{s | reattached: {now, min(max(delay * 2, @retry_min), @retry_max)}}
        {:noreply, reattach(s, "its attach record left the replica")}

      true ->
        Process.send_after(self(), {:reattach, gen}, delay - (now - last))
        {:noreply, s}
    end
  end

  def handle_info({:reattach, _gen}, s), do: {:noreply, s}

  def handle_info(:retry_attach, s) do
    s = %{s | retry_timer: nil}

    if s.phase == :detached,
      do: {:noreply, attach_round(s, s.hordecs, s.reason)},
      else: {:noreply, s}
  end

  def handle_info(:ensure_replicas, s) do
    Process.send_after(self(), :ensure_replicas, @ensure_interval)
    {:noreply, ensure_replicas(s)}
  end

  def handle_info({:ensured, node, ok?}, s) do
    ensured = if ok?, do: MapSet.put(s.ensured, node), else: s.ensured
    {:noreply, %{s | ensured: ensured}}
  end

  def handle_info({:EXIT, pid, _}, %{ensuring: pid} = s), do: {:noreply, %{s | ensuring: nil}}

  def handle_info({:nodedown, node, _info}, s),
    do: {:noreply, %{s | ensured: MapSet.delete(s.ensured, node)}}

  def handle_info({:nodeup, _node, _info}, s), do: {:noreply, s}

  def handle_info(msg, s) do
    {:noreply, %{s | mst: s.mod.handle_info(msg, s.addr, s.mst)}}
  end

  @impl true
  def terminate(reason, s) do
    if function_exported?(s.mod, :terminate, 3), do: s.mod.terminate(reason, s.addr, s.mst)
    :ok
  end

  # ------------------------------------------------------------------ stream

  defp load_snapshot(entries, s) do
    {members, rest} = Enum.split_with(entries, &match?({{:member, _}, _}, &1))
    load_members(s.table, members)
    mst = s.mod.handle_snapshot(rest, s.reason, s.addr, s.mst)

    # The attach wrote our record before we subscribed: a (re)snapshot without it means the
    # replica dropped it since.
    if attach_lost?(s, {:snapshot, rest}), do: send(self(), {:reattach, s.gen})

    went_live(%{s | mst: mst, phase: :live})
  end

  defp apply_diffs(diffs, s) do
    {members, rest} = Enum.split_with(diffs, &member_diff?/1)
    Enum.each(members, &apply_member(s.table, &1))
    mst = if rest == [], do: s.mst, else: s.mod.handle_diffs(rest, s.addr, s.mst)
    # Our own attach record removed (docs/registry.md §5): attach again, after this batch.
    if rest != [] and attach_lost?(s, {:diffs, rest}), do: send(self(), {:reattach, s.gen})

    %{s | mst: mst}
  end

  defp attach_lost?(s, what) do
    if function_exported?(s.mod, :attach_lost?, 2),
      do: s.mod.attach_lost?(what, s.mst),
      else: default_attach_lost?(what, s.addr)
  end

  # Our attach record gone, or naming another replica than ours: two attaches through replicas that had not
  # seen each other's record are ordered by their clocks only, so an older attach can win; attaching again
  # through ours writes a record stamped after everything it has seen (docs/registry.md §5).
  defp default_attach_lost?({:snapshot, entries}, addr) do
    me = self()

    case Enum.find(entries, &match?({{:client, ^me}, _}, &1)) do
      {_, ^addr} -> false
      _ -> true
    end
  end

  defp default_attach_lost?({:diffs, diffs}, addr) do
    me = self()

    Enum.any?(diffs, fn
      {:remove, {:client, ^me}} -> true
      {:add, {:client, ^me}, value} -> value != addr
      _ -> false
    end)
  end

  defp member_diff?({:add, {:member, _}, _}), do: true
  defp member_diff?({:remove, {:member, _}}), do: true
  defp member_diff?(_), do: false

  # `removed` is a supervisor's tombstone for a member that left (docs/supervisor.md §2): not a member.
  defp apply_member(table, {:add, {:member, m}, :removed}), do: :ets.delete(table, {:member, m})
  defp apply_member(table, {:add, {:member, m}, _}), do: :ets.insert(table, {{:member, m}, true})
  defp apply_member(table, {:remove, {:member, m}}), do: :ets.delete(table, {:member, m})

  defp load_members(table, members) do
    new = for {{:member, m}, v} <- members, v != :removed, into: MapSet.new(), do: m
    old = :ets.match(table, {{:member, :"$1"}, :_}) |> MapSet.new(&hd/1)
    for m <- MapSet.difference(old, new), do: :ets.delete(table, {:member, m})
    for m <- MapSet.difference(new, old), do: :ets.insert(table, {{:member, m}, true})
    :ok
  end

  # The mirror is complete again: answer the writers that waited, set the membership.
  defp went_live(s) do
    :ets.insert(s.table, {:attachment, s.addr, s.gen})
    s = maybe_set_members(s)
    s = flush(s)
    for from <- s.barriers, do: GenServer.reply(from, :ok)
    for {from, reply} <- Enum.reverse(s.held), do: GenServer.reply(from, reply)
    s = %{s | barriers: [], held: []}
    send_queued(s)
  end

  # The reply to a forwarded write: its diffs came first, the tables show the write.
  # The reply to a cast_replica/cast_replica_many request: nothing waits for it.
  defp handle_reply(@async_tag, _reply, s), do: s

  defp handle_reply(tag, reply, s) do
    case Map.pop(s.pending, tag) do
      {nil, _} ->
        # A reply from a replica we left (the request went again to the next one), or not ours.
        %{s | mst: s.mod.handle_info({tag, reply}, s.addr, s.mst)}

      {{from, request, deadline}, pending} ->
        s = %{s | pending: pending}

        case reply do
          # The replica no longer knows this node's attachment (it lost sight of it and dropped
          # its record, docs/registry.md §5): attach again, re-asserting what this node owns,
          # then repeat the request.
          {:error, :not_attached} ->
            s = %{s | queued: [{from, request, deadline} | s.queued]}
            reattach(s, "a write was refused")

          _ when s.phase == :live ->
            GenServer.reply(from, reply)
            s

          _ ->
            %{s | held: [{from, reply} | s.held]}
        end
    end
  end

  defp flush(%{has_flush: true} = s), do: %{s | mst: s.mod.flush(s.addr, s.mst)}
  defp flush(s), do: s

  # No monitor per request: the replica is monitored already, and a failover sends every pending
  # request again. The tag is ours, so a late reply from a replica we left is recognised.
  #
  # Requests do not leave one by one: the first one of a burst queues a note to this process, so
  # every write already in the mailbox joins it, and they go as one {'$gen_calls', Self, Calls}
  # message, answered by one {'$gen_replies', Replies} (hordec's runtime serves both). Alone, a
  # write waits for nothing but that note: a sequential caller pays one local message.
  defp forward(s, from, request, deadline) do
    tag = make_ref()
    if s.outbox == [], do: send(self(), :"$hordec_send_outbox")
    s = %{s | outbox: [{tag, request} | s.outbox], outbox_n: s.outbox_n + 1}
    s = %{s | pending: Map.put(s.pending, tag, {from, request, deadline})}
    if s.outbox_n >= @batch_max, do: send_outbox(s), else: s
  end

  defp send_outbox(%{outbox: []} = s), do: s

  # Detached meanwhile: the writes wait in `queued` for the next replica (detach/1 moved them).
  defp send_outbox(%{addr: nil} = s), do: %{s | outbox: [], outbox_n: 0}

  defp send_outbox(%{outbox: [{tag, request}]} = s) do
    send(s.addr, {:"$gen_call", {self(), tag}, request})
    %{s | outbox: [], outbox_n: 0}
  end

  defp send_outbox(s) do
    send(s.addr, {:"$gen_calls", self(), Enum.reverse(s.outbox)})
    %{s | outbox: [], outbox_n: 0}
  end

  # Writes that waited for an attachment, in arrival order; those whose caller gave up are
  # dropped (it got its exit and must not find the write made after all).
  defp send_queued(%{queued: []} = s), do: s

  defp send_queued(s) do
    now = System.monotonic_time(:millisecond)

    s.queued
    |> Enum.reverse()
    |> Enum.reduce(%{s | queued: []}, fn {from, request, deadline}, s ->
      if deadline == :infinity or deadline > now,
        do: forward(s, from, request, deadline),
        else: s
    end)
  end

  defp resubscribe(s) do
    case Mirror.subscribe(s.mirror) do
      {:ok, mirror} ->
        # A snapshot still owed after a failover keeps its reason: the callback reconciles it.
        reason = if s.phase == :live, do: :resync, else: s.reason
        %{s | mirror: mirror, phase: :syncing, reason: reason}

      {:error, reason} ->
        # The replica does not answer: treat it as gone.
        Logger.warning(
          "#{inspect(s.name)}: resubscribing to #{inspect(s.addr)} failed: #{inspect(reason)}"
        )

        {_, node} = s.addr
        s = detach(s)
        attach_round(s, rotate_after(s.hordecs, node), :failover)
    end
  end

  # ------------------------------------------------------------------ attach / failover

  defp detach(s) do
    if s.mon, do: Process.demonitor(s.mon, [:flush])
    if s.addr, do: event(:detached, s, %{hordec: elem(s.addr, 1)})
    :ets.insert(s.table, {:attachment, nil, s.gen})
    # Replies in hand are answered (the writes were made; as a barrier answers while detached);
    # unanswered requests wait for the next replica (the order of concurrent callers' requests
    # does not matter; each caller has one at a time).
    for {from, reply} <- Enum.reverse(s.held), do: GenServer.reply(from, reply)
    queued = Map.values(s.pending) ++ s.queued

    %{
      s
      | addr: nil,
        mon: nil,
        mirror: nil,
        phase: :detached,
        pending: %{},
        queued: queued,
        held: [],
        outbox: [],
        outbox_n: 0
    }
  end

  # Attach again, to the same replica first (its data is the freshest we know of).
  defp reattach(s, why) do
    {_, node} = s.addr
    Logger.warning("#{inspect(s.name)}: attaching again to #{node}: #{why}")
    s = detach(s)
    attach_round(s, [node | List.delete(s.hordecs, node)], :failover)
  end

  defp rotate_after(list, node) do
    case Enum.find_index(list, &(&1 == node)) do
      nil -> list
      i -> Enum.drop(list, i + 1) ++ Enum.take(list, i + 1)
    end
  end

  defp attach_round(s, nodes, reason), do: attach_any(%{s | refused: []}, nodes, reason)

  defp attach_any(s, [], reason) do
    s = %{s | refused: Enum.reverse(s.refused)}
    backoff = s.retry
    Logger.warning("#{inspect(s.name)}: no hordec node reachable, retrying in #{backoff} ms")
    timer = Process.send_after(self(), :retry_attach, backoff)
    %{s | reason: reason, retry: min(backoff * 2, @retry_max), retry_timer: timer}
  end

  defp attach_any(s, [node | rest], reason) do
    case attach(s, node, reason) do
      {:ok, s} ->
        %{s | retry: @retry_min}

      {:error, why, s} ->
        Logger.info("#{inspect(s.name)}: cannot attach to #{node}: #{inspect(why)}")
        s = if match?({:refused, _}, why), do: %{s | refused: [why | s.refused]}, else: s
        attach_any(s, rest, reason)
    end
  end

  defp attach(s, node, reason) do
    addr = {s.name, node}
    t = s.attach_timeout

    with :ok <- connect(node),
         :ok <- start_replica(node, s.mod.start_request(s.mst), t),
         mon = Process.monitor(addr),
         mst = before_attach(s, addr),
         {req, mst} = s.mod.attach_request(reason, mst),
         {:ok, reply} <- safe_call(addr, req, t) |> demonitor_on_error(mon),
         {:ok, mst} <- s.mod.attached(reply, addr, mst) |> refusal() |> demonitor_on_error(mon),
         mirror = Mirror.new(addr, storage: :owner, timeout: t, drop_seq: s.drop_seq),
         {:ok, mirror} <- Mirror.subscribe(mirror) |> demonitor_on_error(mon) do
      # Writers keep waiting (the published address stays nil) until the snapshot is loaded and
      # reconciled: a write that raced ahead of it could be mistaken for a stale entry.
      s = %{s | mst: mst, addr: addr, gen: s.gen + 1, mon: mon, mirror: mirror, drop_seq: nil}
      s = %{s | phase: :syncing, reason: reason, ensured: MapSet.put(s.ensured, node)}
      event(:attached, s, %{hordec: node, reason: reason})
      {:ok, first_attach_writes(s)}
    else
      {:ok, {:error, why}} -> {:error, {:refused, why}, s}
      {:ok, other} -> {:error, other, s}
      {:refused, _} = why -> {:error, why, s}
      {:error, why} -> {:error, why, s}
    end
  end

  # The object's replica on `node`, created through its control process. A node without one (a C
  # program embedding the runtime, which starts its replicas itself) is attached to directly: the
  # attach request then fails with :noproc if no replica runs there either.
  defp start_replica(node, request, timeout) do
    case safe_call({:hordec, node}, request, timeout) do
      {:ok, {:ok, _pid}} -> :ok
      {:error, :noproc} -> :ok
      other -> other
    end
  end

  defp before_attach(s, addr) do
    if function_exported?(s.mod, :before_attach, 2),
      do: s.mod.before_attach(addr, s.mst),
      else: s.mst
  end

  defp refusal({:error, why}), do: {:refused, why}
  defp refusal(other), do: other

  defp demonitor_on_error({:ok, _} = ok, _mon), do: ok

  defp demonitor_on_error(other, mon) do
    Process.demonitor(mon, [:flush])
    other
  end

  # Requests the object wants made once (meta given at start); synchronous, so that their diffs
  # follow the snapshot in the mailbox.
  defp first_attach_writes(%{first_done: true} = s), do: s

  defp first_attach_writes(s) do
    for req <- s.initial_requests, do: safe_call(s.addr, req, s.attach_timeout)

    case s.members do
      list when is_list(list) -> safe_call(s.addr, {:set_members, list}, s.attach_timeout)
      :auto -> :ok
    end

    %{s | first_done: true}
  end

  # :auto membership: every listed node's replica is a member. Only ever adds, so clients whose
  # lists differ, or an operator's HordeC.Cluster.set_members, are never undone by an attach.
  defp maybe_set_members(%{members: :auto} = s) do
    current = :ets.match(s.table, {{:member, :"$1"}, :_}) |> Enum.map(&hd/1)
    mine = for h <- s.hordecs, do: {s.name, h}

    case mine -- current do
      [] ->
        s

      missing ->
        # Synchronous, so that the diffs it causes come before any barrier answered later.
        # Adding is race-free where the replica offers it; replacing with what this mirror shows
        # would drop a member the replica learned meanwhile (another node's attach).
        case safe_call(s.addr, {:add_members, missing}, s.attach_timeout) do
          {:ok, :ok} ->
            s

          _unsupported ->
            safe_call(s.addr, {:set_members, Enum.uniq(current ++ mine)}, s.attach_timeout)
            s
        end
    end
  end

  defp maybe_set_members(s), do: s

  defp connect(node) do
    case Node.connect(node) do
      true -> :ok
      false -> {:error, :noconnection}
      :ignored -> {:error, :not_alive}
    end
  end

  defp safe_call(addr, req, timeout) do
    {:ok, GenServer.call(addr, req, timeout)}
  catch
    :exit, {reason, {GenServer, :call, _}} -> {:error, reason}
  end

  # A replica on every listed node (not only the attached one), so that the data lives on all of
  # them and a failover finds it. Done by a helper process: connecting to a node that is down can
  # take a while, and the mirror must keep up meanwhile.
  defp ensure_replicas(%{ensuring: nil} = s) do
    case Enum.filter(s.hordecs, &(not MapSet.member?(s.ensured, &1) and member_node?(s, &1))) do
      [] ->
        s

      nodes ->
        me = self()
        req = s.mod.start_request(s.mst)
        t = s.attach_timeout

        pid =
          spawn_link(fn ->
            for node <- nodes do
              ok? = connect(node) == :ok and start_replica(node, req, t) == :ok

              send(me, {:ensured, node, ok?})
            end
          end)

        %{s | ensuring: pid}
    end
  end

  defp ensure_replicas(s), do: s

  defp member_node?(%{members: :auto}, _node), do: true
  defp member_node?(%{members: list, name: name}, node), do: {name, node} in list

  defp discover?(spec) do
    Map.get(spec, :members, :auto) == :auto and Node.alive?() and
      HordeC.Daemon.local_node() in spec.hordecs
  end

  # [:horde_c, :attachment, :attached | :detached] (HordeC.Telemetry): failovers, seen from outside.
  defp event(what, s, meta) do
    kind =
      case s.mod do
        HordeC.Registry.Mirror -> :registry
        HordeC.DynamicSupervisor.Mirror -> :dynamic_supervisor
        mod -> mod
      end

    HordeC.Telemetry.execute(
      [:horde_c, :attachment, what],
      %{system_time: System.system_time()},
      Map.merge(%{name: s.name, kind: kind}, meta)
    )
  end
end
