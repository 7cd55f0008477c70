defmodule HordeC.Test.FakeRegistryReplica do
  @moduledoc """
  A BEAM process that speaks the registry replica protocol of `docs/registry.md` §4 (requests,
  change stream) but does not replicate: one replica, on a BEAM peer posing as a hordec node.

  It exists to test the `HordeC.Registry` client's own logic (attach, failover with re-assertion,
  reconciliation after a failover, barriers, stream resync) deterministically and without the C
  node. It is not a reference implementation of the C core: no conflicts between replicas, no
  HLC. The real thing is tested against real hordec nodes.

  `start_hordec/0` (run on the peer) registers a fake control process `:hordec` that answers
  `{:registry_start, name, [keys: kind]}` by starting (or finding) a fake replica registered as
  `name`. `snapshot_part/1` makes snapshots come in several parts.
  """
  use GenServer

  @doc "Starts the fake control process `:hordec` on this node (unlinked). Returns its pid."
  @spec start_hordec() :: pid()
  def start_hordec do
    pid = spawn(&control_loop/0)
    Process.register(pid, :hordec)
    pid
  end

  defp control_loop do
    receive do
      {:"$gen_call", from, {:registry_start, name, opts}} ->
        kind = Keyword.get(opts, :keys, :unique)

        reply =
          case Process.whereis(name) do
            nil ->
              {:ok, pid} = GenServer.start(__MODULE__, {name, kind}, name: name)
              {:ok, pid}

            pid ->
              case GenServer.call(pid, :kind) do
                ^kind -> {:ok, pid}
                other -> {:error, {:keys_mismatch, other}}
              end
          end

        GenServer.reply(from, reply)
        control_loop()

      {:"$gen_call", from, :ping} ->
        GenServer.reply(from, :pong)
        control_loop()

      {:"$gen_call", from, other} ->
        GenServer.reply(from, {:error, {:unknown_request, other}})
        control_loop()

      _ ->
        control_loop()
    end
  end

  @doc "The whole observable map of the replica `name` on this node (for assertions)."
  @spec dump(atom()) :: map()
  def dump(name), do: GenServer.call(name, :dump)

  @impl true
  def init({name, kind}) do
    {:ok,
     %{
       name: name,
       kind: kind,
       map: %{},
       # unique keys: key => the pid holding it
       holders: %{},
       subs: %{},
       clients: %{},
       next_epoch: System.unique_integer([:positive]),
       pending: []
     }}
  end

  @impl true
  def handle_call(:kind, _from, s), do: {:reply, s.kind, s}
  def handle_call(:dump, _from, s), do: {:reply, s.map, s}

  def handle_call({:stream_subscribe, pid}, _from, s) do
    s = flush(s)
    epoch = s.next_epoch

    s =
      case s.subs[pid] do
        {_, _, ref} -> put_in(s.subs[pid], {epoch, 0, ref})
        nil -> put_in(s.subs[pid], {epoch, 0, Process.monitor(pid)})
      end

    parts = s.map |> Enum.to_list() |> Enum.chunk_every(3)
    parts = if parts == [], do: [[]], else: parts
    last = length(parts)

    s =
      parts
      |> Enum.with_index(1)
      |> Enum.reduce(s, fn {part, i}, s -> send_to(s, pid, {:snapshot, part, i < last}) end)

    {:reply, {:ok, epoch}, %{s | next_epoch: epoch + 1}}
  end

  def handle_call(req, {caller, _}, s) do
    {reply, s} = request(req, caller, s)
    {:reply, reply, flush(s)}
  end

  defp request({:attach, client, owned}, _caller, s) do
    s =
      if Map.has_key?(s.clients, client),
        do: s,
        else: put_in(s.clients[client], Process.monitor(client))

    s = put(s, {:client, client}, {s.name, node()})

    s =
      Enum.reduce(owned, s, fn {k, p, v}, s ->
        case winner(s, k) do
          nil -> put(s, {:reg, k, p}, {v, client})
          ^p -> put(s, {:reg, k, p}, {v, client})
          w -> exit_loser(s, p, {:name_conflict, {k, v}, s.name, w})
        end
      end)

    {{:ok, %{keys: s.kind, replica: self()}}, s}
  end

  defp request({:register, k, p, v, owner}, _caller, s) do
    cond do
      is_pid(owner) and not Map.has_key?(s.clients, owner) ->
        {{:error, :not_attached}, s}

      s.kind == :unique and winner(s, k) != nil ->
        {{:error, {:already_registered, winner(s, k)}}, s}

      s.kind == :duplicate and Map.has_key?(s.map, {:reg, k, p}) ->
        {{:error, {:already_registered, p}}, s}

      true ->
        {{:ok, self()}, put(s, {:reg, k, p}, {v, owner})}
    end
  end

  defp request({:unregister, k, p}, _caller, s), do: {:ok, delete(s, {:reg, k, p})}

  # Test hook: behave as a replica that lost sight of `client` (docs/registry.md §5): its record
  # goes, and it must attach again before it registers more.
  defp request({:forget_client, client}, _caller, s) do
    {ref, clients} = Map.pop(s.clients, client)
    if ref, do: Process.demonitor(ref)
    {:ok, delete(%{s | clients: clients}, {:client, client})}
  end

  # Test hook: the record of `client` resolves to another replica (two attaches through replicas
  # that had not seen each other's record, ordered by skewed clocks: docs/registry.md §5).
  defp request({:record_names, client, addr}, _caller, s),
    do: {:ok, put(s, {:client, client}, addr)}

  defp request({:unregister_keys, p, keys}, _caller, s),
    do: {:ok, Enum.reduce(keys, s, &delete(&2, {:reg, &1, p}))}

  defp request({:update_value, k, p, v}, _caller, s) do
    case s.map[{:reg, k, p}] do
      {_, owner} -> {:ok, put(s, {:reg, k, p}, {v, owner})}
      nil -> {:error, s}
    end
  end

  # Each element is a Pid (all its keys) or {Pid, Keys} (those keys).
  defp request({:pids_down, owner, downs}, _caller, s) do
    keys =
      for {{:reg, k, p} = key, {_, ^owner}} <- s.map,
          Enum.any?(downs, fn
            ^p -> true
            {^p, ks} -> k in ks
            _ -> false
          end),
          do: key

    {:ok, Enum.reduce(keys, s, &delete(&2, &1))}
  end

  defp request({:put_meta, k, v}, _caller, s), do: {:ok, put(s, {:meta, k}, v)}
  defp request({:delete_meta, k}, _caller, s), do: {:ok, delete(s, {:meta, k})}

  defp request({:set_members, members}, _caller, s) do
    old = for {{:member, m}, _} <- s.map, do: m
    s = Enum.reduce(old -- members, s, &delete(&2, {:member, &1}))
    {:ok, Enum.reduce(members, s, &put(&2, {:member, &1}, true))}
  end

  defp request(:members, _caller, s),
    do: {Enum.sort(for({{:member, m}, _} <- s.map, do: m)), s}

  defp request({:stream_unsubscribe, pid}, _caller, s) do
    case Map.pop(s.subs, pid) do
      {{_, _, ref}, subs} ->
        Process.demonitor(ref)
        {:ok, %{s | subs: subs}}

      {nil, _} ->
        {:ok, s}
    end
  end

  defp request(_other, _caller, s), do: {{:error, :badarg}, s}

  # A batch of calls, served as hordec's runtime does: each in order, the replies in one message
  # (after the diffs, which handle_call flushes).
  @impl true
  def handle_info({:"$gen_calls", pid, calls}, s) do
    {replies, s} =
      Enum.reduce(calls, {[], s}, fn {tag, req}, {acc, s} ->
        {:reply, reply, s} = handle_call(req, {pid, tag}, s)
        {[{tag, reply} | acc], s}
      end)

    if replies != [], do: send(pid, {:"$gen_replies", Enum.reverse(replies)})
    {:noreply, s}
  end

  def handle_info({:DOWN, _ref, :process, pid, _}, s) do
    cond do
      Map.has_key?(s.subs, pid) ->
        {:noreply, %{s | subs: Map.delete(s.subs, pid)}}

      Map.has_key?(s.clients, pid) ->
        # Only if the client is attached here (docs/registry.md §5).
        s = %{s | clients: Map.delete(s.clients, pid)}
        keys = for {{:reg, _, _} = key, {_, ^pid}} <- s.map, do: key
        s = Enum.reduce([{:client, pid} | keys], s, &delete(&2, &1))
        {:noreply, flush(s)}

      true ->
        {:noreply, s}
    end
  end

  def handle_info(_msg, s), do: {:noreply, s}

  defp winner(s, k), do: Map.get(s.holders, k)

  defp exit_loser(s, pid, reason) do
    Process.exit(pid, reason)
    s
  end

  defp put(s, key, value) do
    s = index(s, key, :put)

    if Map.get(s.map, key) === value,
      do: s,
      else: %{s | map: Map.put(s.map, key, value), pending: [{:add, key, value} | s.pending]}
  end

  defp delete(s, key) do
    if Map.has_key?(s.map, key) do
      s = index(s, key, :delete)
      %{s | map: Map.delete(s.map, key), pending: [{:remove, key} | s.pending]}
    else
      s
    end
  end

  defp index(%{kind: :unique} = s, {:reg, k, p}, :put), do: put_in(s.holders[k], p)

  defp index(%{kind: :unique} = s, {:reg, k, p}, :delete) do
    if s.holders[k] == p, do: %{s | holders: Map.delete(s.holders, k)}, else: s
  end

  defp index(s, _key, _op), do: s

  # Diffs go out before the reply, as the real host does.
  defp flush(%{pending: []} = s), do: s

  defp flush(s) do
    diffs = Enum.reverse(s.pending)
    s = %{s | pending: []}
    Enum.reduce(Map.keys(s.subs), s, &send_to(&2, &1, {:diffs, diffs}))
  end

  defp send_to(s, pid, body) do
    {epoch, seq, ref} = s.subs[pid]
    send(pid, {:hordec_stream, s.name, epoch, seq + 1, body})
    put_in(s.subs[pid], {epoch, seq + 1, ref})
  end
end
