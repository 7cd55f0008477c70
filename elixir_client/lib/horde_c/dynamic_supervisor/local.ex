defmodule HordeC.DynamicSupervisor.Local do
  @moduledoc false
  # Local supervision of the BEAM children this member runs (docs/supervisor.md §4.1, §5), inside
  # the supervisor's process (a HordeC.Attachment, which traps exits): starting them as a replica
  # asks, restarting them by restart type within the member's intensity, stopping them with their
  # `shutdown`, and telling the attached replica what happened.
  #
  # State (fields of the mirror's state map):
  #   running    id => child          the children running here (linked to this process)
  #   pids       pid => id
  #   stopping   monitor ref => stop  children being stopped: {pid, id, child, why, timer}; `why`
  #                                   says what to do when they are down
  #   deferred   id => [start]        starts of a child whose previous copy is still stopping
  #   restarting id => child          a restart that failed, retried (counts as restarts)
  #   ended      id => :delete | :relinquish
  #                                   children that ended here for good or were handed off, until
  #                                   the mirror shows their record no longer naming this member
  #                                   (the report may not have reached the attached replica yet)
  #   restarts   [monotonic ms]       recent restarts (intensity is per member)
  #   unconfirmed id => monotonic ms  children started here at a replica's request (running, or
  #                                   waiting for a restart) whose record the mirror has not shown
  #                                   naming this member since; the time of the (re)start
  #   restarted  id => true           children restarted here whose child_restarted report the
  #                                   mirror has not shown taken (the record still names the old pid)
  #
  # A child is a map: %{id, pid, spec, restart, shutdown, hash}; `spec` is the normalized child spec
  # map (the record's Body).

  require Logger

  alias HordeC.Attachment

  @shutting_down_msg "the node responsible for this process is shutting down or dead, try again soon"

  @doc false
  def new_state do
    %{
      running: %{},
      pids: %{},
      stopping: %{},
      deferred: %{},
      restarting: %{},
      ended: %{},
      restarts: [],
      unconfirmed: %{},
      restarted: %{},
      # Answers to starts held while a burst of them runs (nil: each answer leaves at once).
      answers: nil
    }
  end

  # ------------------------------------------------------------------ starting (asked by a replica)

  @doc "`{'$hordec_sup', start, ReplicaPid, Op, Id, Spec}`: start the child, answer the replica."
  def start_request(st, rpid, op, id, {kind, restart, hash, body}) do
    cond do
      Map.has_key?(st.running, id) ->
        # Asked again (a retry, or an adoption racing a report): it runs already.
        answer(st, rpid, op, id, {:ok, st.running[id].pid})

      stopping?(st, id) ->
        # Its previous copy is still terminating (a move, a terminate): start after it is down.
        start = {rpid, op, {kind, restart, hash, body}}
        %{st | deferred: Map.update(st.deferred, id, [start], &(&1 ++ [start]))}

      kind != :beam or not is_map(body) ->
        answer(st, rpid, op, id, {:error, {:invalid_child_spec, body}})

      st.shutting_down ->
        answer(st, rpid, op, id, {:error, {:node_dead_or_shutting_down, @shutting_down_msg}})

      st.config.max_children != :infinity and local_count(st) >= st.config.max_children ->
        answer(st, rpid, op, id, {:error, :max_children})

      true ->
        child = child(id, restart, hash, body)
        st = %{st | ended: Map.delete(st.ended, id), restarting: Map.delete(st.restarting, id)}

        case start(child.spec, st.config.extra_arguments) do
          {:ok, pid} = ok ->
            st
            |> answer(rpid, op, id, ok)
            |> put_running(%{child | pid: pid})
            |> put_unconfirmed(id)

          {:ok, pid, _info} = ok ->
            st
            |> answer(rpid, op, id, ok)
            |> put_running(%{child | pid: pid})
            |> put_unconfirmed(id)

          other ->
            answer(st, rpid, op, id, other)
        end
    end
  end

  @doc """
  Holds the answers of the starts that follow until `flush_answers/1`: a takeover's burst of
  starts is answered in one message per replica (`Attachment.cast_replica_many/2`), and no reply
  to an answer lands in the mailbox that each child's start scans meanwhile.
  """
  def hold_answers(st), do: %{st | answers: []}

  @doc "Sends the answers held since `hold_answers/1`, in order, and stops holding."
  def flush_answers(%{answers: nil} = st), do: st

  def flush_answers(%{answers: held} = st) do
    held
    |> Enum.reverse()
    |> Enum.chunk_by(&elem(&1, 0))
    |> Enum.each(fn [{rpid, _} | _] = group ->
      Attachment.cast_replica_many(rpid, Enum.map(group, &elem(&1, 1)))
    end)

    %{st | answers: nil}
  end

  defp local_count(st), do: map_size(st.running) + map_size(st.restarting)

  defp child(id, restart, hash, spec) do
    type = Map.get(spec, :type, :worker)

    %{
      id: id,
      pid: nil,
      spec: spec,
      restart: restart,
      hash: hash,
      shutdown: Map.get(spec, :shutdown, if(type == :supervisor, do: :infinity, else: 5_000))
    }
  end

  # The confirm rule (see confirmed/2): a copy started at a replica's request is not yet known
  # to be the one its record names.
  defp put_unconfirmed(st, id),
    do: %{st | unconfirmed: Map.put(st.unconfirmed, id, System.monotonic_time(:millisecond))}

  defp put_running(st, child) do
    %{
      st
      | running: Map.put(st.running, child.id, child),
        pids: Map.put(st.pids, child.pid, child.id)
    }
  end

  defp answer(%{answers: nil} = st, rpid, op, id, result) do
    Attachment.cast_replica(rpid, {:started, op, id, result})
    st
  end

  defp answer(%{answers: held} = st, rpid, op, id, result),
    do: %{st | answers: [{rpid, {:started, op, id, result}} | held]}

  # Elixir's DynamicSupervisor's start: {m, f, extra_arguments ++ a}, exceptions as errors.
  defp start(%{start: {m, f, a}}, extra) do
    apply(m, f, extra ++ a)
  catch
    :exit, reason -> {:error, reason}
    :error, reason -> {:error, {reason, __STACKTRACE__}}
    :throw, value -> {:error, {{:nocatch, value}, __STACKTRACE__}}
  else
    {:ok, pid} when is_pid(pid) -> {:ok, pid}
    {:ok, pid, info} when is_pid(pid) -> {:ok, pid, info}
    :ignore -> :ignore
    {:error, _} = error -> error
    other -> {:error, other}
  end

  # ------------------------------------------------------------------ exits and restarts

  @doc "An exit signal from a linked process: a child ended (restart it, or report it gone)."
  def exited(st, pid, reason, addr) do
    case Map.pop(st.pids, pid) do
      {nil, _} ->
        st

      {id, pids} ->
        {child, running} = Map.pop(st.running, id)
        st = %{st | pids: pids, running: running}

        cond do
          # Horde's rule: a child that exits this way asks to be placed again.
          reason == {:shutdown, :process_redistribution} ->
            ended(st, id, :relinquish, addr)

          restart?(child.restart, reason) ->
            restart(st, child, reason, addr)

          true ->
            ended(st, id, :delete, addr)
        end
    end
  end

  defp restart?(:permanent, _reason), do: true
  defp restart?(:transient, reason), do: not clean?(reason)
  defp restart?(:temporary, _reason), do: false

  defp clean?(:normal), do: true
  defp clean?(:shutdown), do: true
  defp clean?({:shutdown, _}), do: true
  defp clean?(_), do: false

  @doc "A restart that failed earlier is tried again (while within the intensity)."
  def retry_restart(st, id, addr) do
    case Map.pop(st.restarting, id) do
      {nil, _} -> st
      {child, restarting} -> restart(%{st | restarting: restarting}, child, :restart_failed, addr)
    end
  end

  # Docs §5: past max_restarts in max_seconds on this member, the child whose exit crossed the
  # limit is given up (its record goes) and every other child keeps running.
  defp restart(st, child, reason, addr) do
    now = System.monotonic_time(:millisecond)
    window = st.config.max_seconds * 1000
    recent = Enum.filter(st.restarts, &(now - &1 < window))

    if length(recent) >= st.config.max_restarts do
      Logger.error(
        "#{inspect(st.name)}: child #{inspect(child.spec.start)} (id #{child.id}) exited " <>
          "(#{inspect(reason, limit: 8)}) more than max_restarts (#{st.config.max_restarts}) " <>
          "times in #{st.config.max_seconds} s on this member: not restarted"
      )

      ended(%{st | restarts: recent}, child.id, :delete, addr)
    else
      st = %{st | restarts: [now | recent]}

      case start(child.spec, st.config.extra_arguments) do
        {:ok, pid} ->
          restarted(st, %{child | pid: pid}, addr)

        {:ok, pid, _info} ->
          restarted(st, %{child | pid: pid}, addr)

        :ignore ->
          ended(st, child.id, :delete, addr)

        {:error, why} ->
          Logger.error(
            "#{inspect(st.name)}: restarting child id #{child.id} failed: #{inspect(why, limit: 8)}"
          )

          send(self(), {:hordec_restart, child.id})
          %{st | restarting: Map.put(st.restarting, child.id, child)}
      end
    end
  end

  defp restarted(st, child, addr) do
    Attachment.cast_replica(addr, {:child_restarted, self(), child.id, child.pid})
    # A restart keeps the copy (un)confirmed, as the copy it replaces was; the reassert bound
    # counts from the restart. The report stays pending until the mirror shows it (rereport).
    unconfirmed =
      if Map.has_key?(st.unconfirmed, child.id),
        do: Map.put(st.unconfirmed, child.id, System.monotonic_time(:millisecond)),
        else: st.unconfirmed

    put_running(
      %{st | unconfirmed: unconfirmed, restarted: Map.put(st.restarted, child.id, true)},
      child
    )
  end

  # The child ended here (how = :delete) or was handed off (:relinquish): tell the replica, and
  # remember it until the mirror shows the record changed (the mirror re-sends it otherwise).
  defp ended(st, id, how, addr) do
    Attachment.cast_replica(addr, {:child_exited, self(), id, how})
    put_ended(st, id, how)
  end

  defp put_ended(st, id, how), do: %{st | ended: Map.put(st.ended, id, how)}

  @doc "Sends the reports the attached replica may have missed (before an attach, on a record)."
  def report(st, id, addr) do
    cond do
      Map.has_key?(st.ended, id) ->
        Attachment.cast_replica(addr, {:child_exited, self(), id, st.ended[id]})

      Map.has_key?(st.running, id) ->
        Attachment.cast_replica(addr, {:child_restarted, self(), id, st.running[id].pid})

      true ->
        :ok
    end

    st
  end

  @doc """
  The record of `id` names this member with `pid`, and `id` does not run here. If it ended here,
  the report is sent again. If this member knows nothing of it and `pid` is a dead process of
  this node (a child stopped here, named here again by a write that crossed the change that
  moved it away), it is an orphan (docs/supervisor.md §5): it goes back to the replicas to be
  placed again (a temporary one is removed).
  """
  def not_running(st, id, restart, pid, addr) do
    cond do
      Map.has_key?(st.ended, id) ->
        report(st, id, addr)

      busy?(st, id) or not is_pid(pid) or node(pid) != node() or Process.alive?(pid) ->
        st

      true ->
        how = if restart == :temporary, do: :delete, else: :relinquish
        Attachment.cast_replica(addr, {:child_exited, self(), id, how})
        st
    end
  end

  defp busy?(st, id),
    do: Map.has_key?(st.restarting, id) or Map.has_key?(st.deferred, id) or stopping?(st, id)

  @doc "The mirror shows the record of `id` no longer naming this member: nothing left to report."
  def settled(st, id), do: %{st | ended: Map.delete(st.ended, id)}

  @doc "The mirror shows the record of `id` with the pid running here: its restart is recorded."
  def restart_recorded(st, id), do: %{st | restarted: Map.delete(st.restarted, id)}

  @doc """
  The mirror shows the record of `id` naming this member: the copy running (or waiting for a
  restart) here is the one a replica asked for and recorded, so the duplicate rule may stop it
  from now on.
  """
  def confirm(st, id), do: %{st | unconfirmed: Map.delete(st.unconfirmed, id)}

  @doc """
  Whether the duplicate rule may stop the local copy of `id` (the confirm rule). A copy a
  replica's start request has just started is not, until the mirror has shown its record naming
  this member: the mirror's previous value of that record (from before a quorum loss or a
  failover) may name this member while the fresh snapshot shows it relinquished, waiting for
  that very start. Stopping it there would leave the replica recording a stopped pid, and nobody
  would restart the child. (test/sim/sim_supervisor.c, rule `confirm`.)
  """
  def confirmed?(st, id), do: not Map.has_key?(st.unconfirmed, id)

  @doc """
  Drops the bookkeeping of children that no longer run here (ended, stopped, handed off): the
  reassert and rereport rules look only at what is still here.
  """
  def prune(st) do
    here = fn id -> Map.has_key?(st.running, id) or Map.has_key?(st.restarting, id) end

    %{
      st
      | unconfirmed: Map.filter(st.unconfirmed, fn {id, _} -> here.(id) end),
        restarted: Map.filter(st.restarted, fn {id, _} -> Map.has_key?(st.running, id) end)
    }
  end

  @doc """
  The ids of children running here, started at a replica's request more than `bound` ms ago,
  whose record the mirror has never shown naming this member (the reassert rule).
  """
  def unrecorded(st, bound) do
    now = System.monotonic_time(:millisecond)

    for {id, at} <- st.unconfirmed, Map.has_key?(st.running, id), now - at > bound, do: id
  end

  # ------------------------------------------------------------------ stopping

  @doc """
  Starts stopping the running child `id`, for `why`:
    * `{:terminate, replica_pid, op}` – terminate_child: answer the replica when it is down;
    * `:move` – active redistribution: exit reason {:shutdown, :process_redistribution}, then
      relinquish its record;
    * `:duplicate` – its record names another member now: stop, report nothing;
    * `:quorum` – the replica lost quorum: stop, report nothing (the majority takes it over).
  Returns `{:ok, st}` (stopping), `{:gone, st}` (it was waiting for a restart: no longer), or
  `{:not_found, st}`.
  """
  def stop(st, id, why) do
    case Map.pop(st.running, id) do
      {nil, _} ->
        case Map.pop(st.restarting, id) do
          {nil, _} ->
            {:not_found, st}

          {_child, restarting} ->
            st = %{st | restarting: restarting}
            # Not running: a terminate is done (its record goes), anything else leaves the record.
            st = if match?({:terminate, _, _}, why), do: put_ended(st, id, :delete), else: st
            {:gone, st}
        end

      {child, running} ->
        st = %{st | running: running, pids: Map.delete(st.pids, child.pid)}
        reason = if why == :move, do: {:shutdown, :process_redistribution}, else: :shutdown
        {ref, timer} = begin_stop(child.pid, child.shutdown, reason)
        stop = %{pid: child.pid, id: id, child: child, why: why, timer: timer}
        {:ok, %{st | stopping: Map.put(st.stopping, ref, stop)}}
    end
  end

  # As an OTP supervisor shuts a child down: monitor, unlink (an exit already on its way stays
  # in the mailbox: drop it, the monitor reports the end), exit signal, kill after `shutdown` ms.
  defp begin_stop(pid, shutdown, reason) do
    ref = Process.monitor(pid)
    Process.unlink(pid)

    receive do
      {:EXIT, ^pid, _} -> :ok
    after
      0 -> :ok
    end

    case shutdown do
      :brutal_kill ->
        Process.exit(pid, :kill)
        {ref, nil}

      :infinity ->
        Process.exit(pid, reason)
        {ref, nil}

      ms ->
        Process.exit(pid, reason)
        {ref, Process.send_after(self(), {:hordec_kill, ref}, ms)}
    end
  end

  @doc "A monitor fired: a child being stopped is down (false if the monitor is not ours)."
  def down(st, ref, addr) do
    case Map.pop(st.stopping, ref) do
      {nil, _} ->
        :not_ours

      {stop, stopping} ->
        if stop.timer, do: Process.cancel_timer(stop.timer)
        st = %{st | stopping: stopping}

        st =
          case stop.why do
            {:terminate, rpid, op} ->
              Attachment.cast_replica(rpid, {:terminated, op, stop.id, :ok})
              # Should that answer be lost with its replica, the record must still go.
              put_ended(st, stop.id, :delete)

            :move ->
              ended(st, stop.id, :relinquish, addr)

            :shutdown ->
              ended(st, stop.id, :relinquish, addr)

            _duplicate_or_quorum ->
              st
          end

        {:ok, run_deferred(st, stop.id)}
    end
  end

  defp run_deferred(st, id) do
    case Map.pop(st.deferred, id) do
      {nil, _} ->
        st

      {starts, deferred} ->
        Enum.reduce(starts, %{st | deferred: deferred}, fn {rpid, op, spec}, st ->
          start_request(st, rpid, op, id, spec)
        end)
    end
  end

  @doc "A child's `shutdown` time passed: kill it."
  def kill(st, ref) do
    case st.stopping do
      %{^ref => stop} -> Process.exit(stop.pid, :kill)
      _ -> :ok
    end

    st
  end

  defp stopping?(st, id), do: Enum.any?(st.stopping, fn {_, stop} -> stop.id == id end)

  @doc """
  Stops every child, in parallel, each with its `shutdown`, and relinquishes each one as it
  goes down (graceful stop: another member adopts it). Returns when all are down.
  """
  def stop_all(st, addr) do
    st =
      Enum.reduce(Map.keys(st.running), st, fn id, st ->
        {:ok, st} = stop(st, id, :shutdown)
        st
      end)

    # Children waiting for a restart were ended already: they are handed off too.
    st =
      Enum.reduce(Map.keys(st.restarting), %{st | restarting: %{}}, fn id, st ->
        ended(st, id, :relinquish, addr)
      end)

    # Starts that waited for a previous copy to stop: this member will not run them.
    st =
      for {id, starts} <- st.deferred, {rpid, op, _spec} <- starts, reduce: st do
        st ->
          answer(st, rpid, op, id, {:error, {:node_dead_or_shutting_down, @shutting_down_msg}})
      end

    await_all(%{st | deferred: %{}}, addr)
  end

  defp await_all(%{stopping: stopping} = st, _addr) when map_size(stopping) == 0, do: st

  defp await_all(st, addr) do
    receive do
      {:DOWN, ref, :process, _pid, _reason} when is_map_key(st.stopping, ref) ->
        {:ok, st} = down(st, ref, addr)
        await_all(st, addr)

      {:hordec_kill, ref} ->
        await_all(kill(st, ref), addr)
    end
  end
end
