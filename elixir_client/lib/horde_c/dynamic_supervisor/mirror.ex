defmodule HordeC.DynamicSupervisor.Mirror do
  @moduledoc false
  # The supervisor's part of a HordeC.Attachment (docs/supervisor.md): the ETS mirror of the
  # replica's observable map, and the member's side of the protocol — attach with the children it
  # runs, answer the replicas' requests (start, terminate, move, quorum lost, reattach) through
  # local supervision (HordeC.DynamicSupervisor.Local), and stop duplicates.
  #
  # Tables (owned by the attachment process; only it writes them):
  #   Name.Children  {Id, Kind, Restart, Hash, Body, Member, Pid}    every child record (§2)
  #   Name.Info      {{:status, {Name, Node}}, {Kind, Status, Pid, Via, Types}}, {:object, :supervisor},
  #                  {:sup_config, config} (plus the attachment's own rows: members, attachment)
  #
  # Duplicates (§5): a child running here whose record changes from naming this member to naming
  # another one (or nil), or is deleted, is stopped without a report. Only such a transition
  # counts: a child just started here has no record until the replica that asked writes it.
  #
  # Four rules go beyond the documented protocol. The deterministic simulation of the supervisor
  # (test/sim/sim_supervisor.c, whose client follows this module; HORDEC_SIM_PLAIN_CLIENT drops
  # them) finds an invariant broken without each one:
  #   confirm   the duplicate rule applies only to a copy whose record the mirror has shown naming
  #             this member since a replica asked for it (Local.confirmed?/2, in reconcile/5);
  #   orphan    a record naming this member, for a child it neither runs nor has a report about,
  #             is reported as an orphan (Local.not_running/5, from reconcile/5);
  #   rereport  a pending report is sent again every tick while the mirror shows the record
  #             naming this member against it (tick/2);
  #   reassert  a child started at a replica's request whose record the mirror has not shown
  #             naming this member start_timeout + 3 s later makes this member attach again,
  #             which re-asserts it in Owned (tick/2).

  @behaviour HordeC.Attachment

  require Logger

  alias HordeC.DynamicSupervisor.{Local, Spec}

  # The period of the rereport and reassert rules (the simulated client's tick).
  @tick_ms 100
  # The reassert rule's bound past the start timeout: a start's answer and the record it writes
  # reach the mirror well within it.
  @reassert_grace_ms 3_000
  # Starts of a burst run (and are answered) this many at a time.
  @start_chunk 256

  @doc false
  def children_table(name), do: :"#{name}.Children"

  @impl true
  # A module-based supervisor (HordeC.DynamicSupervisor.start_link/3): its init/1 gives the options.
  def init({:module, mod, arg, opts}, info) do
    case mod.init(arg) do
      {:ok, options} when is_list(options) ->
        options =
          opts
          |> Keyword.merge(options)
          |> Keyword.put(:name, Keyword.fetch!(opts, :name))

        init(options, info)

      :ignore ->
        :ignore

      other ->
        {:stop, {:bad_return, {mod, :init, other}}}
    end
  end

  def init(options, info) when is_list(options) do
    case Spec.config(options) do
      {:ok, config} -> init_config(config, info)
      {:error, reason} -> {:stop, reason}
    end
  rescue
    e in ArgumentError -> {:stop, e}
  end

  defp init_config(config, info) do
    %{name: name} = config
    children = children_table(name)
    :ets.new(children, [:set, :protected, :named_table, read_concurrency: true])

    :ets.insert(info, [
      {:object, :supervisor},
      {:sup_config, Map.take(config, [:timeout, :start_timeout, :distribution])}
    ])

    st =
      Map.merge(Local.new_state(), %{
        name: name,
        me: {name, node()},
        info: info,
        children: children,
        config: config,
        shutting_down: false,
        # When the reassert rule last asked to attach again, {attach generation, monotonic ms}:
        # at most once a second per generation (the attachment paces attaching again itself, and
        # drops a request made while it resyncs, hence asking again).
        reasserted: {0, 0}
      })

    spec = %{
      name: name,
      hordecs: config.hordecs,
      members: config.members,
      initial_requests: [],
      attach_timeout: config.attach_timeout
    }

    Process.send_after(self(), :hordec_sup_tick, @tick_ms)
    {:ok, spec, st}
  end

  # ------------------------------------------------------------------ attaching

  @impl true
  def start_request(st), do: {:supervisor_start, st.name, []}

  @impl true
  def before_attach(addr, st) do
    # Children that ended here while the report could not be made (or was lost with the old
    # replica): the new replica must hear it before the attach, which would otherwise treat their
    # records as orphans to restart.
    Enum.reduce(Map.keys(st.ended), st, &Local.report(&2, &1, addr))
  end

  @impl true
  def attach_request(_reason, st) do
    owned = for {id, c} <- st.running, do: {id, :beam, c.restart, c.hash, c.spec, c.pid}

    {{:attach, self(), Spec.wire_opts(st.config), owned}, st}
  end

  @impl true
  def attached({:ok, %{replica: pid, member: {_, _}}}, _addr, st) when is_pid(pid), do: {:ok, st}
  def attached(other, _addr, _st), do: {:error, other}

  @impl true
  def attach_lost?({:snapshot, entries}, st) do
    me = self()
    key = {:status, st.me}

    not Enum.any?(entries, fn
      {^key, {_kind, status, ^me, _via, _types}} -> status != :dead
      _ -> false
    end)
  end

  def attach_lost?({:diffs, diffs}, st) do
    key = {:status, st.me}
    Enum.any?(diffs, &match?({:remove, ^key}, &1))
  end

  # ------------------------------------------------------------------ the stream

  @impl true
  def handle_snapshot(entries, _reason, addr, st) do
    {records, statuses} =
      Enum.reduce(entries, {%{}, %{}}, fn
        {{:child, id}, {_, _, _, _, _, _} = v}, {r, s} -> {Map.put(r, id, v), s}
        {{:status, m}, {_, _, _, _, _} = v}, {r, s} -> {r, Map.put(s, m, v)}
        _, acc -> acc
      end)

    # What runs or ended here, and what the records say runs here, against the records now.
    me = st.me
    named = for {id, {_, _, _, _, ^me, _}} <- records, do: id
    ids = Enum.uniq(Map.keys(st.running) ++ Map.keys(st.ended) ++ named)

    st =
      Enum.reduce(ids, st, fn id, st ->
        reconcile(st, id, lookup(st, id), Map.get(records, id), addr)
      end)

    for [id] <- :ets.match(st.children, {:"$1", :_, :_, :_, :_, :_, :_}),
        not Map.has_key?(records, id),
        do: :ets.delete(st.children, id)

    :ets.insert(st.children, for({id, v} <- records, do: row(id, v)))

    for [m] <- :ets.match(st.info, {{:status, :"$1"}, :_}),
        not Map.has_key?(statuses, m),
        do: :ets.delete(st.info, {:status, m})

    :ets.insert(st.info, for({m, v} <- statuses, do: {{:status, m}, v}))
    st
  end

  @impl true
  def handle_diffs(diffs, addr, st) do
    Enum.reduce(diffs, st, fn
      {:add, {:child, id}, {_, _, _, _, _, _} = v}, st ->
        old = lookup(st, id)
        :ets.insert(st.children, row(id, v))
        reconcile(st, id, old, v, addr)

      {:remove, {:child, id}}, st ->
        old = lookup(st, id)
        :ets.delete(st.children, id)
        reconcile(st, id, old, nil, addr)

      {:add, {:status, m}, {_, _, _, _, _} = v}, st ->
        :ets.insert(st.info, {{:status, m}, v})
        st

      {:remove, {:status, m}}, st ->
        :ets.delete(st.info, {:status, m})
        st

      _other, st ->
        st
    end)
  end

  defp row(id, {kind, restart, hash, body, member, pid}),
    do: {id, kind, restart, hash, body, member, pid}

  defp lookup(st, id) do
    case :ets.lookup(st.children, id) do
      [{^id, kind, restart, hash, body, member, pid}] -> {kind, restart, hash, body, member, pid}
      [] -> nil
    end
  end

  defp member_of({_, _, _, _, member, _}), do: member
  defp member_of(nil), do: nil

  # One child's local state against its record changing from `old` to `new`.
  defp reconcile(st, id, old, new, addr) do
    me = st.me

    cond do
      member_of(new) == me ->
        # The record says it runs here: make sure the replica knows how it is.
        {_, restart, _, _, _, pid} = new

        # The copy here is the one recorded (confirm rule).
        st = Local.confirm(st, id)

        case st.running do
          %{^id => %{pid: ^pid}} -> st |> Local.settled(id) |> Local.restart_recorded(id)
          %{^id => _} -> Local.report(st, id, addr)
          # The orphan rule: a terminate_child's delete that a concurrent write of the same
          # record from another replica undoes (add-wins: the write survives) leaves the record
          # naming this member with the stopped pid for good, this member having settled its
          # report when the mirror showed the delete. So a record naming this member, for a
          # child it does not run and has nothing to report about, is reported as an orphan
          # (as the core does with such records at attach).
          _ -> Local.not_running(st, id, restart, pid, addr)
        end

      member_of(old) == me and
        (Map.has_key?(st.running, id) or Map.has_key?(st.restarting, id)) and
          Local.confirmed?(st, id) ->
        # It ran here and the record moved away (another member took it over while this one was
        # cut off, or it was deleted): the record decides, this copy stops. Only a confirmed
        # copy (the confirm rule, Local.confirmed?/2): one a replica's start request has just
        # started may be the very one the relinquished record waits for.
        Logger.info(
          "#{inspect(st.name)}: child id #{id} is recorded #{if new, do: "elsewhere", else: "as gone"}: stopping the local copy"
        )

        {_, st} = Local.stop(st, id, :duplicate)
        Local.settled(st, id)

      true ->
        Local.settled(st, id)
    end
  end

  # ------------------------------------------------------------------ messages

  @impl true
  # A takeover sends a member thousands of starts at once. Each child's start_link waits for its
  # ack with a receive that scans this process's whole mailbox (proc_lib, no receive
  # optimisation): with the starts still queued, a burst costs O(n^2). So the queued starts are
  # taken out of the mailbox first (they are at its head in a burst), then run @start_chunk at a
  # time, the starts that arrived meanwhile taken out again between chunks; the answers of a chunk
  # leave together after it (one message, and its one reply, instead of one each: a reply per
  # answer used to pile up in the mailbox the next starts scan).
  def handle_info({:"$hordec_sup", :start, rpid, op, id, spec}, _addr, st) when is_pid(rpid) do
    run_starts([{rpid, op, id, spec} | queued_starts([], 100_000)], st)
  end

  # A takeover's burst, as the replica sends it: up to 256 start requests in one message.
  def handle_info({:"$hordec_sup", :starts, rpid, starts}, _addr, st)
      when is_pid(rpid) and is_list(starts) do
    run_starts(expand_starts(rpid, starts) ++ queued_starts([], 100_000), st)
  end

  def handle_info({:"$hordec_sup", :terminate, rpid, op, id}, _addr, st) when is_pid(rpid) do
    case Local.stop(st, id, {:terminate, rpid, op}) do
      {:ok, st} ->
        st

      {:gone, st} ->
        HordeC.Attachment.cast_replica(rpid, {:terminated, op, id, :ok})
        st

      {:not_found, st} ->
        HordeC.Attachment.cast_replica(rpid, {:terminated, op, id, :not_found})
        st
    end
  end

  def handle_info({:"$hordec_sup", :move, id}, _addr, st) do
    {_, st} = Local.stop(st, id, :move)
    st
  end

  def handle_info({:"$hordec_sup", :quorum_lost}, _addr, st) do
    Logger.warning("#{inspect(st.name)}: quorum lost, stopping the children of this member")

    Enum.reduce(Map.keys(st.running), %{st | restarting: %{}}, fn id, st ->
      {:ok, st} = Local.stop(st, id, :quorum)
      st
    end)
  end

  def handle_info({:"$hordec_sup", :reattach}, _addr, st) do
    # Handled by the attachment as its own {:reattach, gen}, when it is live on that generation.
    case :ets.lookup(st.info, :attachment) do
      [{:attachment, addr, gen}] when addr != nil -> send(self(), {:reattach, gen})
      _ -> :ok
    end

    st
  end

  def handle_info({:EXIT, pid, reason}, addr, st) when is_pid(pid),
    do: Local.exited(st, pid, reason, addr)

  def handle_info({:DOWN, ref, :process, _pid, _reason}, addr, st) do
    case Local.down(st, ref, addr) do
      {:ok, st} -> st
      :not_ours -> st
    end
  end

  def handle_info(:hordec_sup_tick, _addr, st) do
    Process.send_after(self(), :hordec_sup_tick, @tick_ms)
    tick(st)
  end

  def handle_info({:hordec_kill, ref}, _addr, st), do: Local.kill(st, ref)
  def handle_info({:hordec_restart, id}, addr, st), do: Local.retry_restart(st, id, addr)

  def handle_info(msg, _addr, st) do
    Logger.debug("#{inspect(st.name)}: unexpected message #{inspect(msg, limit: 8)}")
    st
  end

  # The rereport and reassert rules, every @tick_ms while the mirror is live (its snapshot loaded;
  # the address writers use is published then). While attaching, the attach re-asserts and
  # re-reports everything anyway.
  defp tick(st) do
    case :ets.lookup(st.info, :attachment) do
      [{:attachment, addr, gen}] when addr != nil and not st.shutting_down ->
        st = Local.prune(st)
        now = System.monotonic_time(:millisecond)

        case Local.unrecorded(st, st.config.start_timeout + @reassert_grace_ms) do
          [_ | _] when elem(st.reasserted, 0) == gen and now - elem(st.reasserted, 1) < 1_000 ->
            rereport(st, addr)

          [id | _] ->
            # The reassert rule: a start the replica failed early (it saw this member dead,
            # across a partition) but that this member carried out when the message got through
            # runs with no record: the late answer writes it and, the member being dead in that
            # replica's view, a temporary child's record is deleted at once, and the mirror never
            # shows a transition for the duplicate rule to act on. Attaching again re-asserts it
            # (Owned), and the snapshot that follows confirms it or shows it elsewhere.
            Logger.info(
              "#{inspect(st.name)}: child id #{id} still has no record naming this member: attaching again"
            )

            send(self(), {:reattach, gen})
            %{st | reasserted: {gen, now}}

          [] ->
            rereport(st, addr)
        end

      _ ->
        st
    end
  end

  # The rereport rule: a report not yet taken is sent again while the mirror shows the record
  # naming this member against it. A child_exited report may go to a replica that dies before
  # passing its change on (e.g. the terminate's answer, to a replica other than the attached
  # one): the mirror then never changes, nothing else would trigger the report again, and the
  # record would name a stopped pid for good. The same holds for a child_restarted report whose
  # record still names the old pid. Reports are idempotent.
  defp rereport(st, addr) do
    me = st.me

    st =
      Enum.reduce(Map.keys(st.ended), st, fn id, st ->
        case lookup(st, id) do
          {_, _, _, _, ^me, _} -> Local.report(st, id, addr)
          _ -> st
        end
      end)

    Enum.reduce(Map.keys(st.restarted), st, fn id, st ->
      case {lookup(st, id), st.running} do
        {{_, _, _, _, ^me, pid}, %{^id => %{pid: pid}}} -> Local.restart_recorded(st, id)
        {{_, _, _, _, ^me, _}, %{^id => _}} -> Local.report(st, id, addr)
        _ -> st
      end
    end)
  end

  defp run_starts([], st), do: st

  defp run_starts(starts, st) do
    {chunk, rest} = Enum.split(starts, @start_chunk)

    st =
      chunk
      |> Enum.reduce(Local.hold_answers(st), fn {rpid, op, id, spec}, st ->
        Local.start_request(st, rpid, op, id, spec)
      end)
      |> Local.flush_answers()

    run_starts(rest ++ queued_starts([], 100_000), st)
  end

  defp queued_starts(acc, n) when n <= 0, do: Enum.reverse(acc)

  defp queued_starts(acc, n) do
    receive do
      {:"$hordec_sup", :start, rpid, op, id, spec} when is_pid(rpid) ->
        queued_starts([{rpid, op, id, spec} | acc], n - 1)

      {:"$hordec_sup", :starts, rpid, starts} when is_pid(rpid) and is_list(starts) ->
        more = expand_starts(rpid, starts)
        queued_starts(Enum.reverse(more, acc), n - length(more))
    after
      0 -> Enum.reverse(acc)
    end
  end

  # {Op, Id, Spec} elements of a `starts` message; anything else in it is dropped (a replica never sends it).
  defp expand_starts(rpid, starts),
    do: for({op, id, spec} <- starts, do: {rpid, op, id, spec})

  # ------------------------------------------------------------------ graceful stop

  @impl true
  # stop/3, a parent's shutdown, :init.stop(): out of placement first, then every child stopped
  # with its shutdown and relinquished as it goes down (another member adopts it, after its
  # terminate/2 finished), then detach (status dead).
  def terminate(_reason, addr, st) do
    st = %{st | shutting_down: true}
    t = st.config.timeout
    if addr, do: call(addr, {:set_status, self(), :shutting_down}, t)
    Local.stop_all(st, addr)
    if addr, do: call(addr, {:detach, self()}, t)
    :ok
  end

  defp call(addr, request, timeout) do
    GenServer.call(addr, request, timeout)
  catch
    :exit, _ -> :error
  end
end
