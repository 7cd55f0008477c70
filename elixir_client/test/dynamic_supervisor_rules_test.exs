defmodule HordeC.DynamicSupervisorRulesTest do
  @moduledoc """
  The four rules of the supervisor's member logic that go beyond the documented protocol
  (`HordeC.DynamicSupervisor.Mirror`'s moduledoc; found by test/sim/sim_supervisor.c, whose
  HORDEC_SIM_PLAIN_CLIENT drops them): confirm, orphan, rereport, reassert.

  Each is provoked with real processes against a fake replica: a BEAM peer posing as a hordec
  node runs a relay registered under the supervisor's name, which forwards whatever reaches it to
  a fake replica in this runner. The fake answers the protocol (attach, stream subscription) and
  the test scripts the rest: start requests to the member, and the records its stream shows. It
  replicates nothing and writes a child's record only when the test says so, which is how each
  race the simulator found is laid out deterministically.
  """
  use HordeC.InteropCase, async: false

  alias HordeC.DynamicSupervisor.Mirror
  alias HordeC.Test.SupervisorHelpers, as: H

  # Evaluated on the peer (none of this module's code is loaded there).
  @relay """
  pid =
    spawn(fn ->
      loop = fn loop ->
        receive do
          msg ->
            send(to, {:relay, msg})
            loop.(loop)
        end
      end

      loop.(loop)
    end)

  Process.register(pid, name)
  pid
  """

  setup_all do
    %{peer: start_peer()}
  end

  setup ctx do
    name = :"rsup_#{System.unique_integer([:positive])}"
    test = self()
    fake = spawn(fn -> fake_init(name, ctx.peer.node, test) end)
    {relay, _} = peer_call(ctx.peer, Code, :eval_string, [@relay, [to: fake, name: name]])
    send(fake, {:relay_pid, relay})

    on_exit(fn ->
      # Stopped while the fake still answers its detach.
      case Process.whereis(name) do
        nil -> :ok
        pid -> quietly(fn -> GenServer.stop(pid, :shutdown, 10_000) end)
      end

      Process.exit(fake, :kill)
      quietly(fn -> peer_call(ctx.peer, Process, :exit, [relay, :kill]) end)
    end)

    %{name: name, fake: fake, relay: relay, me: {name, node()}}
  end

  defp quietly(fun) do
    fun.()
  catch
    :exit, _ -> :ok
  end

  defp start(ctx, opts \\ []) do
    {:ok, _} =
      H.start_sup([name: ctx.name, strategy: :one_for_one, hordec: [ctx.peer.node]] ++ opts)

    assert_receive {:fake, {:attach, []}}
    Process.whereis(ctx.name)
  end

  defp body(id), do: %{id: id, start: {Agent, :start_link, [fn -> id end]}}

  # A replica asks the member to start child `id`; returns the pid it answers with.
  defp start_child(ctx, id, restart) do
    op = System.unique_integer([:positive])
    sup = Process.whereis(ctx.name)
    send(sup, {:"$hordec_sup", :start, ctx.relay, op, id, {:beam, restart, 7, body(id)}})
    assert_receive {:fake, {:started, ^op, ^id, {:ok, pid}}}
    pid
  end

  # The fake's stream shows the record of `id` naming `member` with `pid`, and the mirror has it.
  defp record(ctx, id, restart, member, pid) do
    value = {:beam, restart, 7, body(id), member, pid}
    send(ctx.fake, {:diffs, [{:add, {:child, id}, value}]})
    table = Mirror.children_table(ctx.name)

    eventually(fn ->
      match?([{^id, :beam, ^restart, 7, _, ^member, ^pid}], :ets.lookup(table, id))
    end)
  end

  defp unrecord(ctx, id) do
    send(ctx.fake, {:diffs, [{:remove, {:child, id}}]})
    eventually(fn -> :ets.lookup(Mirror.children_table(ctx.name), id) == [] end)
  end

  defp dead_pid do
    pid = spawn(fn -> :ok end)
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, :process, ^pid, _}
    pid
  end

  test "confirm: a copy just started at a replica's request is not stopped as a duplicate", ctx do
    start(ctx)
    # The mirror's old value names this member (from before a quorum loss or a failover)...
    bystander = spawn(fn -> Process.sleep(:infinity) end)
    record(ctx, 1, :permanent, ctx.me, bystander)
    # ...a replica asks for the child here, and the fresh record shows it relinquished, waiting
    # for that very start.
    pid = start_child(ctx, 1, :permanent)
    ref = Process.monitor(pid)
    record(ctx, 1, :permanent, nil, nil)
    refute_receive {:DOWN, ^ref, :process, ^pid, _}, 300

    # Once the mirror has shown its record naming this member, the duplicate rule applies.
    record(ctx, 1, :permanent, ctx.me, pid)
    record(ctx, 1, :permanent, {ctx.name, :elsewhere@nohost}, bystander)
    assert_receive {:DOWN, ^ref, :process, ^pid, :shutdown}
    refute_receive {:fake, {:child_exited, _, 1, _}}, 200
    Process.exit(bystander, :kill)
  end

  test "orphan: a record naming this member with a stopped pid of its own is reported", ctx do
    start(ctx)
    # As a terminate's delete undone by a concurrent write of the same record leaves it.
    record(ctx, 2, :permanent, ctx.me, dead_pid())
    assert_receive {:fake, {:child_exited, _, 2, :relinquish}}
    record(ctx, 3, :temporary, ctx.me, dead_pid())
    assert_receive {:fake, {:child_exited, _, 3, :delete}}
  end

  test "rereport: a report is sent again while the record names this member against it", ctx do
    start(ctx)
    pid = start_child(ctx, 4, :temporary)
    record(ctx, 4, :temporary, ctx.me, pid)
    # The child ends for good; the replica that got the report does not pass it on.
    Agent.stop(pid)
    assert_receive {:fake, {:child_exited, _, 4, :delete}}
    assert_receive {:fake, {:child_exited, _, 4, :delete}}, 1_000
    assert_receive {:fake, {:child_exited, _, 4, :delete}}, 1_000

    # Once the record is gone, nothing more.
    unrecord(ctx, 4)
    Process.sleep(150)
    flush_reports(4)
    refute_receive {:fake, {:child_exited, _, 4, _}}, 400
  end

  @tag timeout: 60_000
  test "reassert: a started child whose record never shows up is re-asserted by attaching", ctx do
    start(ctx, start_timeout: 100)
    pid = start_child(ctx, 5, :permanent)
    # No record is written: start_timeout + 3 s later the member attaches again, with it owned.
    assert_receive {:fake, {:attach, owned}}, 6_000
    assert [{5, :beam, :permanent, 7, _, ^pid}] = owned
    # The attach wrote its record, and the snapshot after it confirms the copy: no more attaches.
    refute_receive {:fake, {:attach, _}}, 3_600
    assert Process.alive?(pid)
  end

  defp flush_reports(id) do
    receive do
      {:fake, {:child_exited, _, ^id, _}} -> flush_reports(id)
    after
      0 -> :ok
    end
  end

  # ------------------------------------------------------------------ the fake replica

  defp fake_init(name, node, test) do
    receive do
      {:relay_pid, relay} ->
        fake_loop(%{
          name: name,
          node: node,
          test: test,
          relay: relay,
          sub: nil,
          epoch: 0,
          map: %{}
        })
    end
  end

  defp fake_loop(s) do
    receive do
      {:relay, {:"$gen_call", {from, tag}, req}} ->
        {reply, s} = fake_request(req, s)
        # Diffs go out before the reply, as the real host does.
        send(from, {tag, reply})
        fake_loop(s)

      {:relay, other} ->
        send(s.test, {:fake, other})
        fake_loop(s)

      {:diffs, diffs} ->
        fake_loop(apply_diffs(s, diffs))
    end
  end

  defp fake_request({:attach, client, _opts, owned}, s) do
    member = {s.name, node(client)}

    diffs =
      [{:add, {:status, member}, {:beam, :alive, client, {s.name, s.node}, []}}] ++
        for {id, kind, restart, hash, body, pid} <- owned,
            do: {:add, {:child, id}, {kind, restart, hash, body, member, pid}}

    s = apply_diffs(s, diffs)
    send(s.test, {:fake, {:attach, owned}})
    {{:ok, %{replica: s.relay, member: {s.name, s.node}}}, s}
  end

  defp fake_request({:stream_subscribe, pid}, s) do
    epoch = s.epoch + 1
    send(pid, {:hordec_stream, s.name, epoch, 1, {:snapshot, Map.to_list(s.map), false}})
    {{:ok, epoch}, %{s | sub: {pid, epoch, 1}, epoch: epoch}}
  end

  defp fake_request({:add_members, _}, s), do: {:ok, s}

  defp fake_request(req, s) do
    send(s.test, {:fake, req})
    {:ok, s}
  end

  defp apply_diffs(s, diffs) do
    map =
      Enum.reduce(diffs, s.map, fn
        {:add, k, v}, m -> Map.put(m, k, v)
        {:remove, k}, m -> Map.delete(m, k)
      end)

    case s.sub do
      nil ->
        %{s | map: map}

      {pid, epoch, seq} ->
        send(pid, {:hordec_stream, s.name, epoch, seq + 1, {:diffs, diffs}})
        %{s | map: map, sub: {pid, epoch, seq + 1}}
    end
  end
end
