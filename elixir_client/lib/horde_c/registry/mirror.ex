defmodule HordeC.Registry.Mirror do
  @moduledoc false
  # The registry's part of a HordeC.Attachment: the ETS mirror of the replica's observable map
  # (docs/registry.md §3), listeners, and the links to this node's registered processes.
  #
  # Tables (all owned by the attachment process; only it writes them):
  #   Name        {Key, Pid, Value}  :set (unique) | :duplicate_bag (duplicate), read by every read API
  #   Name.Pids   {{Pid, Key}}       :ordered_set, to find a process's entries (keys/2, its death,
  #                                  failover): one process may hold very many keys, and a key-prefix
  #                                  select or a delete here costs O(log n) whatever it holds (a bag's
  #                                  chain of one pid's rows made each of them O(keys held)). An
  #                                  ordered set compares keys with ==, so 1 and 1.0 share a row:
  #                                  then it is {{Pid, Key}, More}, More the keys == Key but not
  #                                  === Key (rare: a row of one element costs a word less). In a
  #                                  unique registry only this node's processes are indexed: most
  #                                  entries a node mirrors are other nodes', and keys/2 of a remote
  #                                  pid can scan instead (~120 B saved each).
  #   Name.Info   {{:meta, K}, V}, {:kind, Kind} (plus the attachment's own rows)
  #
  # The processes this client vouches for (Owner == self()) are linked, as Elixir's Registry links
  # them: a link needs no reference to be undone, so nothing per process is stored (a monitor's
  # reference would cost ~100 B per process in a table), and linking twice is linking once.
  #
  # Only this process writes the tables, in stream order; writers get read-your-writes from the
  # attachment's barrier instead of writing rows themselves, so a stale diff can never resurrect or
  # hide a row a writer already changed.

  @behaviour HordeC.Attachment

  alias HordeC.Attachment

  @doc false
  def pids_table(name), do: :"#{name}.Pids"

  @impl true
  # A module-based registry (HordeC.Registry.start_link/3): its init/1 gives the options.
  def init({:module, mod, arg, opts}, info) do
    case mod.init(arg) do
      {:ok, options} when is_list(options) ->
        options = Keyword.put(options, :name, Keyword.fetch!(opts, :name))

        try do
          HordeC.Registry.config!(options)
        rescue
          e in ArgumentError -> {:stop, e}
        else
          config -> init(config, info)
        end

      :ignore ->
        :ignore

      other ->
        {:stop, {:bad_return, {mod, :init, other}}}
    end
  end

  def init(config, info) do
    %{name: name, kind: kind} = config
    type = if kind == :unique, do: :set, else: :duplicate_bag
    :ets.new(name, [type, :protected, :named_table, read_concurrency: true])
    :ets.new(pids_table(name), [:ordered_set, :protected, :named_table, read_concurrency: true])
    :ets.insert(info, [{:kind, kind}, {:timeout, config.timeout}])

    st = %{
      name: name,
      kind: kind,
      keys: name,
      pids: pids_table(name),
      info: info,
      listeners: config.listeners,
      down: [],
      owned: nil
    }

    spec = %{
      name: name,
      hordecs: config.hordecs,
      members: config.members,
      initial_requests: for({k, v} <- config.meta, do: {:put_meta, k, v}),
      attach_timeout: config.attach_timeout,
      drop_seq: config.drop_seq
    }

    {:ok, spec, st}
  end

  @impl true
  def start_request(st), do: {:registry_start, st.name, [keys: st.kind]}

  @impl true
  def attach_request(:initial, st), do: {{:attach, self(), []}, %{st | owned: nil}}

  # What this node's live processes hold, as this mirror last saw it: the new replica re-puts it,
  # and the snapshot that follows is reconciled against it (handle_snapshot/4).
  def attach_request(:failover, st) do
    me = node()

    owned =
      :ets.foldl(
        fn row, acc ->
          {pid, _} = elem(row, 0)

          if node(pid) == me and Process.alive?(pid) do
            for(key <- row_keys(row), value <- own_values(st, key, pid), do: {key, pid, value}) ++
              acc
          else
            acc
          end
        end,
        [],
        st.pids
      )

    {{:attach, self(), owned}, %{st | owned: MapSet.new(owned, fn {k, p, _} -> {k, p} end)}}
  end

  @impl true
  def attached({:ok, %{keys: kind}}, _addr, %{kind: kind} = st), do: {:ok, st}
  def attached({:ok, %{keys: other}}, _addr, _st), do: {:error, {:keys_mismatch, other}}
  def attached(other, _addr, _st), do: {:error, other}

  @impl true
  def handle_snapshot(entries, reason, addr, st) do
    new = for {key, value} <- entries, reg_or_meta?(key), into: %{}, do: {key, value}

    # Removals first: for a unique key whose holder changed, listeners see the old holder leave
    # before the new one arrives.
    stale =
      :ets.foldl(
        fn {k, p, _v}, acc ->
          if Map.has_key?(new, {:reg, k, p}), do: acc, else: [{k, p} | acc]
        end,
        [],
        st.keys
      )

    Enum.each(stale, fn {k, p} -> remove(st, k, p) end)

    for [mk] <- :ets.match(st.info, {{:meta, :"$1"}, :_}), not Map.has_key?(new, {:meta, mk}) do
      :ets.delete(st.info, {:meta, mk})
    end

    me = self()

    Enum.each(new, fn
      {{:reg, k, p}, {_v, ^me}} = entry when reason == :failover and st.owned != nil ->
        # Ours but not asserted at attach: a write the old replica applied (an unregister) was lost
        # with it, or a write is in flight and its caller will repeat it once we are live. Either
        # way the entry must go; a repeated write comes after this removal.
        if MapSet.member?(st.owned, {k, p}) do
          apply_entry(st, entry)
        else
          Attachment.cast_replica(addr, {:unregister, k, p})
        end

      entry ->
        apply_entry(st, entry)
    end)

    %{st | owned: nil}
  end

  defp reg_or_meta?({:reg, _, _}), do: true
  defp reg_or_meta?({:meta, _}), do: true
  defp reg_or_meta?(_), do: false

  defp apply_entry(st, {{:reg, k, p}, value}), do: add(st, k, p, value)
  defp apply_entry(st, {{:meta, mk}, v}), do: :ets.insert(st.info, {{:meta, mk}, v})

  @impl true
  def handle_diffs(diffs, _addr, st) do
    Enum.each(diffs, fn
      {:add, {:reg, k, p}, value} -> add(st, k, p, value)
      {:remove, {:reg, k, p}} -> remove(st, k, p)
      {:add, {:meta, mk}, v} -> :ets.insert(st.info, {{:meta, mk}, v})
      {:remove, {:meta, mk}} -> :ets.delete(st.info, {:meta, mk})
      _client_or_unknown -> :ok
    end)

    st
  end

  @impl true
  def handle_info({:EXIT, pid, _reason}, _addr, st) when is_pid(pid) do
    # Known dead: gone from this node's reads now, from everyone's once the replica has it. (An
    # EXIT from a link undone meanwhile is still a death: a pids_down for it changes nothing.)
    # The replica is told which keys, so that it finds them without a scan.
    keys = remove_all(st, pid)
    if st.down == [], do: send(self(), :flush_down)
    %{st | down: [{pid, keys} | st.down]}
  end

  def handle_info(:flush_down, addr, st), do: flush(addr, st)
  def handle_info(_msg, _addr, st), do: st

  @impl true
  def flush(nil, st), do: st
  def flush(_addr, %{down: []} = st), do: st

  def flush(addr, st) do
    Attachment.cast_replica(addr, {:pids_down, self(), Enum.reverse(st.down)})
    %{st | down: []}
  end

  # ------------------------------------------------------------------ applying one entry

  defp add(st, k, p, {v, owner}) do
    # Linking a dead process makes an EXIT (we trap exits), whose pids_down removes the entry.
    if owner == self(), do: Process.link(p)

    if node(p) == node() and not Process.alive?(p) do
      # Dead already: never shown. If we own it, its EXIT is on its way (the link above) and must
      # report this key too, so the pid index lists it meanwhile.
      if owner == self(), do: index(st, p, k)
      :ok
    else
      put(st, st.kind, k, p, v)
    end
  end

  defp add(_st, _k, _p, _malformed), do: :ok

  # The order of the table writes matters: a writer skips its barrier when the row it checks
  # already shows its write (HordeC.Registry's `visible` functions), so that row changes last —
  # the keys row for unique registries and for duplicate adds, the pid index for duplicate removes.
  defp put(st, :unique, k, p, v) do
    case :ets.lookup(st.keys, k) do
      [{_, ^p, ^v}] ->
        :ok

      [{_, ^p, _old}] ->
        :ets.insert(st.keys, {k, p, v})
        notify(st, {:register, st.name, k, p, v})

      [{_, other, _}] ->
        # The key changed hands (a conflict resolved); the loser's removal may follow or may
        # already be done — either way listeners hear of the loser first, once.
        unindex(st, other, k)
        notify(st, {:unregister, st.name, k, other})
        maybe_unlink(st, other)
        index(st, p, k)
        :ets.insert(st.keys, {k, p, v})
        notify(st, {:register, st.name, k, p, v})

      [] ->
        index(st, p, k)
        :ets.insert(st.keys, {k, p, v})
        notify(st, {:register, st.name, k, p, v})
    end
  end

  defp put(st, :duplicate, k, p, v) do
    if holds?(st, p, k) do
      case dup_rows(st, k, p) do
        [{_, _, ^v}] ->
          :ok

        rows ->
          # the new row first: (k, p) never looks unregistered meanwhile
          :ets.insert(st.keys, {k, p, v})
          for {_, _, old} = row <- rows, old !== v, do: :ets.delete_object(st.keys, row)
          notify(st, {:register, st.name, k, p, v})
      end
    else
      index(st, p, k)
      :ets.insert(st.keys, {k, p, v})
      notify(st, {:register, st.name, k, p, v})
    end
  end

  defp remove(%{kind: :unique} = st, k, p) do
    case :ets.lookup(st.keys, k) do
      [{_, ^p, _}] ->
        unindex(st, p, k)
        :ets.delete(st.keys, k)
        notify(st, {:unregister, st.name, k, p})
        maybe_unlink(st, p)

      _ ->
        :ok
    end
  end

  defp remove(%{kind: :duplicate} = st, k, p) do
    if holds?(st, p, k) do
      Enum.each(dup_rows(st, k, p), &:ets.delete_object(st.keys, &1))
      unindex(st, p, k)
      notify(st, {:unregister, st.name, k, p})
      maybe_unlink(st, p)
    end

    :ok
  end

  # Every entry of a dead process: the pid's rows go at once, not
  # one by one (a process may hold many keys). Returns its keys.
  defp remove_all(st, p) do
    keys = keys_of(st.pids, p)
    # (a delete per key is cheaper than a select_delete: most processes hold one key)
    Enum.each(keys, &:ets.delete(st.pids, {p, &1}))

    Enum.each(keys, fn k ->
      rows =
        if st.kind == :unique,
          do: for({_, ^p, _} = row <- :ets.lookup(st.keys, k), do: row),
          else: dup_rows(st, k, p)

      if rows != [] do
        Enum.each(rows, &:ets.delete_object(st.keys, &1))
        notify(st, {:unregister, st.name, k, p})
      end
    end)

    keys
  end

  defp index(st, p, k) do
    if indexed?(st.kind, p) do
      # insert_new fails only when a row with an == key is there (this key, or 1.0 for 1)
      with false <- :ets.insert_new(st.pids, {{p, k}}),
           [row] <- :ets.lookup(st.pids, {p, k}) do
        keys = row_keys(row)
        if not exact_in?(k, keys), do: :ets.insert(st.pids, {elem(row, 0), tl(keys) ++ [k]})
      end
    end

    :ok
  end

  defp unindex(st, p, k) do
    if indexed?(st.kind, p) do
      case :ets.lookup(st.pids, {p, k}) do
        [] ->
          :ok

        [row] ->
          case Enum.reject(row_keys(row), &(&1 === k)) do
            [] -> :ets.delete(st.pids, {p, k})
            [k0] -> :ets.insert(st.pids, {{p, k0}})
            [k0 | more] -> :ets.insert(st.pids, {{p, k0}, more})
          end
      end
    end

    :ok
  end

  @doc false
  # Whether the pids table holds `p`'s keys (duplicate registries check membership there).
  def indexed?(:duplicate, _p), do: true
  def indexed?(:unique, p), do: node(p) == node()

  @doc false
  # The keys `p` holds, from a pids table (a range of the ordered set: its rows are {{p, key}} or {{p, key}, more}).
  def keys_of(pids, p) do
    pids
    |> :ets.select([{{{p, :"$1"}}, [], [[:"$1"]]}, {{{p, :"$1"}, :"$2"}, [], [[:"$1" | :"$2"]]}])
    |> Enum.concat()
  end

  @doc false
  def indexes?(pids, p, k) do
    case :ets.lookup(pids, {p, k}) do
      [row] -> exact_in?(k, row_keys(row))
      [] -> false
    end
  end

  defp row_keys({{_, k0}}), do: [k0]
  defp row_keys({{_, k0}, more}), do: [k0 | more]

  defp exact_in?(k, keys), do: Enum.any?(keys, &(&1 === k))

  defp holds?(st, p, k), do: indexes?(st.pids, p, k)

  # The rows of (k, p) in a duplicate registry. A key without match-pattern atoms ('_', '$1'...)
  # can go into a match head (one hash chain); any other key is compared exactly, row by row.
  defp dup_rows(st, k, p) do
    if HordeC.Registry.Spec.literal?(k),
      do: :ets.match_object(st.keys, {k, p, :_}),
      else: for({_, ^p, _} = row <- :ets.lookup(st.keys, k), do: row)
  end

  defp own_values(%{kind: :unique} = st, k, p) do
    case :ets.lookup(st.keys, k) do
      [{_, ^p, v}] -> [v]
      _ -> []
    end
  end

  defp own_values(st, k, p), do: for({_, _, v} <- dup_rows(st, k, p), do: v)

  # A process of this node left with no entry: undo our link to it (one to a process we never
  # linked is a no-op).
  defp maybe_unlink(st, p) do
    if node(p) == node() and
         :ets.select(st.pids, [{{{p, :_}}, [], [true]}, {{{p, :_}, :_}, [], [true]}], 1) ==
           :"$end_of_table",
       do: Process.unlink(p)

    :ok
  end

  defp notify(%{listeners: []}, _msg), do: :ok

  defp notify(st, msg) do
    for l <- st.listeners do
      try do
        send(l, msg)
      rescue
        # A listener that is not running (yet) must not take the registry down (Horde's does).
        ArgumentError -> :ok
      end
    end

    :ok
  end
end
