defmodule HordeC.DynamicSupervisor.Spec do
  @moduledoc false
  # Validation: the start options of HordeC.DynamicSupervisor (ArgumentError for what Horde and
  # Elixir's Registry reject by raising; {:supervisor_data, reason} for what Elixir's
  # DynamicSupervisor rejects from init), and child specs (as DynamicSupervisor.start_child/2
  # validates them), and the {Kind, Restart, Hash, Body} a replica is asked to start.

  @timeout 5_000
  @start_timeout 15_000

  @options [
    :name,
    :strategy,
    :distribution_strategy,
    :process_redistribution,
    :members,
    :max_restarts,
    :max_seconds,
    :max_children,
    :extra_arguments,
    :shutdown,
    :hordec,
    :timeout,
    :start_timeout,
    :attach_timeout
  ]
  # Horde's options that mean nothing here; accepted so that migrating is an alias change.
  @ignored [:proxy_message_ttl, :delta_crdt_options]

  @strategies %{
    HordeC.UniformDistribution => HordeC.UniformDistribution,
    HordeC.UniformQuorumDistribution => HordeC.UniformQuorumDistribution,
    HordeC.UniformRandomDistribution => HordeC.UniformRandomDistribution,
    Horde.UniformDistribution => HordeC.UniformDistribution,
    Horde.UniformQuorumDistribution => HordeC.UniformQuorumDistribution,
    Horde.UniformRandomDistribution => HordeC.UniformRandomDistribution
  }

  @doc """
  Checks the options that are wrong whatever else is given, raising ArgumentError (what Horde's
  start_link and init/1 raise, and this client's own options). The rest is checked by config/1.
  """
  @spec check!(term()) :: :ok
  def check!(options) do
    unless Keyword.keyword?(options) do
      raise ArgumentError, "expected a keyword list of options, got: #{inspect(options)}"
    end

    case Keyword.keys(options) -- (@options ++ @ignored) do
      [] ->
        :ok

      unknown ->
        raise ArgumentError, "unknown options for HordeC.DynamicSupervisor: #{inspect(unknown)}"
    end

    name = options[:name]

    unless is_atom(name) and name != nil do
      raise ArgumentError, "expected :name to be given and to be an atom, got: #{inspect(name)}"
    end

    unless Keyword.has_key?(options, :strategy) do
      raise ArgumentError, "expected :strategy option to be given"
    end

    strategy!(Keyword.get(options, :distribution_strategy, HordeC.UniformDistribution))

    redistribution = Keyword.get(options, :process_redistribution, :passive)

    unless redistribution in [:passive, :active] do
      raise ArgumentError,
            "expected :process_redistribution to be :passive or :active, got: #{inspect(redistribution)}"
    end

    hordecs!(options)
    members!(options, hordecs!(options))

    for opt <- [:timeout, :start_timeout, :attach_timeout] do
      t = Keyword.get(options, opt, @timeout)

      unless is_integer(t) and t > 0 do
        raise ArgumentError,
              "expected #{inspect(opt)} to be a positive integer, got: #{inspect(t)}"
      end
    end

    shutdown = Keyword.get(options, :shutdown, :infinity)

    unless shutdown in [:infinity, :brutal_kill] or (is_integer(shutdown) and shutdown >= 0) do
      raise ArgumentError,
            "expected :shutdown to be :infinity, :brutal_kill or a non-negative integer, " <>
              "got: #{inspect(shutdown)}"
    end

    :ok
  end

  @doc """
  The configuration the supervisor's process runs with, or `{:error, {:supervisor_data, reason}}`
  for the values Elixir's DynamicSupervisor refuses in init (it stops with that reason).
  """
  @spec config(keyword()) :: {:ok, map()} | {:error, {:supervisor_data, term()}}
  def config(options) do
    check!(options)
    hordecs = hordecs!(options)
    max_restarts = Keyword.get(options, :max_restarts, 3)
    max_seconds = Keyword.get(options, :max_seconds, 5)
    max_children = Keyword.get(options, :max_children, :infinity)
    extra = Keyword.get(options, :extra_arguments, [])
    strategy = Keyword.fetch!(options, :strategy)

    cond do
      strategy != :one_for_one ->
        {:error, {:supervisor_data, {:invalid_strategy, strategy}}}

      not (is_integer(max_restarts) and max_restarts >= 0) ->
        {:error, {:supervisor_data, {:invalid_intensity, max_restarts}}}

      not (is_integer(max_seconds) and max_seconds > 0) ->
        {:error, {:supervisor_data, {:invalid_period, max_seconds}}}

      not (max_children == :infinity or (is_integer(max_children) and max_children >= 0)) ->
        {:error, {:supervisor_data, {:invalid_max_children, max_children}}}

      not is_list(extra) ->
        {:error, {:supervisor_data, {:invalid_extra_arguments, extra}}}

      true ->
        {:ok,
         %{
           name: Keyword.fetch!(options, :name),
           distribution:
             strategy!(Keyword.get(options, :distribution_strategy, HordeC.UniformDistribution)),
           redistribution: Keyword.get(options, :process_redistribution, :passive),
           members: members!(options, hordecs),
           hordecs: hordecs,
           max_restarts: max_restarts,
           max_seconds: max_seconds,
           max_children: max_children,
           extra_arguments: extra,
           timeout: Keyword.get(options, :timeout, @timeout),
           start_timeout: Keyword.get(options, :start_timeout, @start_timeout),
           attach_timeout: Keyword.get(options, :attach_timeout, @timeout)
         }}
    end
  end

  @doc "The replicas' options (docs/supervisor.md §4, Opts) for a configuration."
  @spec wire_opts(map()) :: map()
  def wire_opts(config) do
    %{
      auto: config.members == :auto,
      distribution: config.distribution.wire_name(),
      redistribution: config.redistribution,
      max_restarts: config.max_restarts,
      max_seconds: config.max_seconds,
      max_children: config.max_children
    }
  end

  defp strategy!(mod) do
    case Map.fetch(@strategies, mod) do
      {:ok, ours} ->
        ours

      :error ->
        raise ArgumentError,
              "expected :distribution_strategy to be HordeC.UniformDistribution, " <>
                "HordeC.UniformQuorumDistribution or HordeC.UniformRandomDistribution, " <>
                "got: #{inspect(mod)}"
    end
  end

  # :local is this node's HordeC.Daemon; without the option, config :horde_c, :hordec.
  defp hordecs!(options), do: HordeC.Daemon.hordecs!(options)

  # A bare atom `n` stands for `{n, h}` for every listed hordec node, as for HordeC.Registry
  # (HordeC.Cluster.set_members/3 expands it the same way).
  defp members!(options, hordecs) do
    case Keyword.get(options, :members, :auto) do
      :auto ->
        :auto

      list when is_list(list) ->
        list
        |> Enum.flat_map(fn
          {n, h} = m when is_atom(n) and is_atom(h) -> [m]
          n when is_atom(n) -> for h <- hordecs, do: {n, h}
          _ -> raise ArgumentError, bad_members(list)
        end)
        |> Enum.uniq()

      other ->
        raise ArgumentError, bad_members(other)
    end
  end

  defp bad_members(got),
    do: "expected :members to be :auto or a list of {name, node}, got: #{inspect(got)}"

  # ------------------------------------------------------------------ child specs

  @doc """
  What start_child/2 sends a replica for a normalized child spec: `{:ok, {kind, restart, hash,
  body}}`, or `{:error, reason}` with Elixir DynamicSupervisor's reasons for an invalid spec.
  """
  @spec child(map()) :: {:ok, {:beam | :c, atom(), non_neg_integer(), term()}} | {:error, term()}
  def child(spec) do
    restart = Map.get(spec, :restart, :permanent)
    type = Map.get(spec, :type, :worker)
    shutdown = Map.get(spec, :shutdown, if(type == :supervisor, do: :infinity, else: 5_000))
    modules = Map.get(spec, :modules, [])

    cond do
      not valid_mfa?(spec[:start]) ->
        {:error, {:invalid_mfa, spec[:start]}}

      restart not in [:permanent, :transient, :temporary] ->
        {:error, {:invalid_restart_type, restart}}

      not valid_shutdown?(shutdown) ->
        {:error, {:invalid_shutdown, shutdown}}

      type not in [:worker, :supervisor] ->
        {:error, {:invalid_child_type, type}}

      not (modules == :dynamic or is_list(modules)) ->
        {:error, {:invalid_modules, modules}}

      true ->
        kind(spec, restart)
    end
  end

  defp kind(spec, restart) do
    hash = :erlang.phash2(Map.delete(spec, :id))

    case spec.start do
      {HordeC.CWorker, _, _} ->
        case HordeC.CWorker.body(spec) do
          nil -> {:error, {:invalid_mfa, spec.start}}
          body -> {:ok, {:c, restart, hash, body}}
        end

      _ ->
        {:ok, {:beam, restart, hash, spec}}
    end
  end

  defp valid_mfa?({m, f, a}) when is_atom(m) and is_atom(f) and is_list(a), do: true
  defp valid_mfa?(_), do: false

  @doc false
  def valid_shutdown?(s) when is_integer(s) and s >= 0, do: true
  def valid_shutdown?(s), do: s in [:infinity, :brutal_kill]
end
