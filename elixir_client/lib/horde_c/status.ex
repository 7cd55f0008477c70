defmodule HordeC.Status do
  @moduledoc """
  An operator's view of a HordeC cluster: its hordec nodes, the replicas they host and their
  sync state, as tables (what `mix horde_c.status` prints).

  `collect/2` starts from any nodes — hordec nodes or BEAM nodes running `:horde_c` — and
  follows each hordec node's peers, so one node of the cluster is enough. It reads only what
  the nodes already answer: the control process's `:info` and each replica's `:stats`. Replica
  names come from the `:replicas` option and from the BEAM nodes reached (their registries,
  supervisors and maps: `local_objects/0`).
  """

  @typedoc "One hordec node: its `:info` reply, or why it could not be read."
  @type node_row :: %{node: node(), info: map() | nil, error: term()}

  @typedoc "One replica of one object on one hordec node: its `:stats` reply."
  @type replica_row :: %{name: atom(), node: node(), kind: atom(), stats: map()}

  @type t :: %{nodes: [node_row()], replicas: [replica_row()], beam_nodes: [node()]}

  @doc """
  Reads the cluster reachable from `nodes`. Options: `:replicas` (names of registries,
  supervisors or maps to look for on every hordec node), `:timeout` per call (default 5000 ms),
  `:follow` (follow the peers of each hordec node found, default `true`).
  """
  @spec collect([node()], keyword()) :: t()
  def collect(nodes, opts \\ []) do
    timeout = Keyword.get(opts, :timeout, 5_000)
    follow? = Keyword.get(opts, :follow, true)
    acc = %{hordecs: %{}, beams: MapSet.new(), names: MapSet.new(opts[:replicas] || [])}
    acc = walk(nodes, MapSet.new(), acc, timeout, follow?)

    hordecs = acc.hordecs |> Map.keys() |> Enum.sort()

    replicas =
      for name <- Enum.sort(acc.names),
          h <- hordecs,
          match?(%{info: %{}}, acc.hordecs[h]),
          stats = stats(name, h, timeout),
          stats != nil,
          do: %{name: name, node: h, kind: kind(stats), stats: stats}

    %{
      nodes: for(h <- hordecs, do: acc.hordecs[h]),
      replicas: replicas,
      beam_nodes: Enum.sort(acc.beams)
    }
  end

  defp walk([], _seen, acc, _timeout, _follow?), do: acc

  defp walk([n | rest], seen, acc, timeout, follow?) do
    if MapSet.member?(seen, n) or n == node() do
      walk(rest, seen, acc, timeout, follow?)
    else
      seen = MapSet.put(seen, n)

      case HordeC.Node.info(n, timeout) do
        {:ok, info} ->
          acc = put_in(acc.hordecs[n], %{node: n, info: info, error: nil})
          next = if follow?, do: info.peers, else: []
          walk(rest ++ next, seen, acc, timeout, follow?)

        {:error, reason} ->
          case beam_objects(n, timeout) do
            {:ok, %{daemon: daemon, objects: objects}} ->
              acc = %{acc | beams: MapSet.put(acc.beams, n)}
              acc = %{acc | names: Enum.into(Enum.map(objects, &elem(&1, 1)), acc.names)}
              walk(rest ++ List.wrap(daemon), seen, acc, timeout, follow?)

            :error ->
              # A peer of a hordec node that is neither (a BEAM node without :horde_c) is not
              # listed; a node asked for by name that answers nothing is, with the reason.
              acc =
                if hordec_peer?(acc, n),
                  do: acc,
                  else: put_in(acc.hordecs[n], %{node: n, info: nil, error: reason})

              walk(rest, seen, acc, timeout, follow?)
          end
      end
    end
  end

  # A BEAM node a hordec node lists as its peer (not itself a hordec node): not an error row.
  defp hordec_peer?(acc, n),
    do: Enum.any?(acc.hordecs, fn {_, row} -> row.info && n in row.info.peers end)

  defp beam_objects(n, timeout) do
    {:ok, :erpc.call(n, __MODULE__, :local_objects, [], timeout)}
  catch
    _, _ -> :error
  end

  @doc """
  The HordeC objects of this BEAM node: its daemon's hordec node (or nil) and
  `[{kind, name}]` of its registries, supervisors and maps. Called on app nodes by `collect/2`.
  """
  @spec local_objects() :: %{daemon: node() | nil, objects: [{atom(), atom()}]}
  def local_objects do
    attachments =
      for {{HordeC.Attachment, :info_table, name}, _} <- :persistent_term.get(),
          Process.whereis(name) != nil,
          do: {:attachment, name}

    crdts =
      try do
        for [name] <- :ets.match(:horde_c_clients, {{HordeC.Crdt, :"$1"}, :_, :_}),
            do: {:crdt, name}
      rescue
        ArgumentError -> []
      end

    daemon =
      case HordeC.Daemon.status() do
        %{node: node} -> node
        nil -> nil
      end

    %{daemon: daemon, objects: Enum.uniq(attachments ++ crdts)}
  end

  defp stats(name, node, timeout) do
    case GenServer.call({name, node}, :stats, timeout) do
      %{} = stats -> stats
      _ -> nil
    end
  catch
    :exit, _ -> nil
  end

  defp kind(%{entries: _}), do: :registry
  defp kind(%{children: _}), do: :supervisor
  defp kind(%{elements: _}), do: :crdt
  defp kind(_), do: :unknown

  # ------------------------------------------------------------------ formatting

  @doc "The status as text: a table of nodes, then one of replicas."
  @spec format(t()) :: String.t()
  def format(%{nodes: nodes, replicas: replicas, beam_nodes: beams}) do
    node_rows =
      for %{node: n, info: info, error: err} <- nodes do
        if info do
          [
            to_string(n),
            "up",
            info.version,
            duration(info.uptime_ms),
            Integer.to_string(length(info.peers)),
            bytes(info.rss_bytes),
            Integer.to_string(info.processes),
            "#{info.msgs_in}/#{info.msgs_out}"
          ]
        else
          [to_string(n), "unreachable (#{inspect(err)})", "", "", "", "", "", ""]
        end
      end

    replica_rows =
      for %{name: name, node: n, kind: kind, stats: st} <- replicas do
        [
          inspect(name),
          to_string(kind),
          to_string(n),
          size(kind, st),
          Integer.to_string(Map.get(st, :members, Map.get(st, :neighbours, 0))),
          Integer.to_string(Map.get(st, :subscribers, 0)),
          "#{Map.get(st, :msgs_sent, 0)}/#{Map.get(st, :msgs_received, 0)}",
          Integer.to_string(Map.get(st, :rejected, 0)),
          if(Map.get(st, :idle, false), do: "in sync", else: "syncing")
        ]
      end

    [
      "hordec nodes\n",
      table(
        ["node", "state", "version", "uptime", "peers", "rss", "procs", "msgs in/out"],
        node_rows
      ),
      "\nreplicas\n",
      if(replica_rows == [],
        do: "(none found: name them with --replica NAME, or give a BEAM node running horde_c)\n",
        else:
          table(
            [
              "name",
              "kind",
              "node",
              "size",
              "members",
              "subscribers",
              "msgs out/in",
              "rejected",
              "sync"
            ],
            replica_rows
          )
      ),
      if(beams == [],
        do: "",
        else: "\nBEAM nodes: #{Enum.map_join(beams, ", ", &to_string/1)}\n"
      )
    ]
    |> IO.iodata_to_binary()
  end

  defp size(:registry, st), do: "#{st.entries} entries"
  defp size(:supervisor, st), do: "#{st.children} children"
  defp size(:crdt, st), do: "#{st.keys} keys"
  defp size(_, _), do: "?"

  defp table(header, rows) do
    widths =
      Enum.reduce([header | rows], List.duplicate(0, length(header)), fn row, ws ->
        Enum.zip_with(row, ws, &max(String.length(&1), &2))
      end)

    line = fn row ->
      row
      |> Enum.zip(widths)
      |> Enum.map_join("  ", fn {cell, w} -> String.pad_trailing(cell, w) end)
      |> String.trim_trailing()
      |> Kernel.<>("\n")
    end

    sep = widths |> Enum.map_join("  ", &String.duplicate("-", &1)) |> Kernel.<>("\n")
    [line.(header), sep | Enum.map(rows, line)]
  end

  defp duration(ms) do
    s = div(ms, 1000)

    cond do
      s < 60 -> "#{s}s"
      s < 3600 -> "#{div(s, 60)}m#{rem(s, 60)}s"
      true -> "#{div(s, 3600)}h#{div(rem(s, 3600), 60)}m"
    end
  end

  defp bytes(b) when b >= 1_048_576, do: "#{Float.round(b / 1_048_576, 1)} MiB"
  defp bytes(b), do: "#{div(b, 1024)} KiB"
end
