defmodule HordeC.CWorker do
  @moduledoc """
  Child specifications for **C workers**: processes inside `hordec` nodes, of a worker type
  registered there (hordec ships `"echo"` and `"kv"`; programs embedding the runtime add their
  own), supervised by `HordeC.DynamicSupervisor` like any child.

      {:ok, pid} = HordeC.DynamicSupervisor.start_child(MySup, {HordeC.CWorker, type: "kv", arg: %{a: 1}})
      GenServer.call(pid, {:get, :a})       #=> {:ok, 1}

  Options: `:type` (required, a binary naming the worker type), `:arg` (any term, given to the
  type's init; default `nil`), and the usual `:id`, `:restart` (default `:permanent`) and
  `:shutdown`. A C worker runs on a hordec node that is a member of the supervisor (the
  supervisor's `distribution_strategy` chooses which); its pid answers `GenServer.call/3`,
  `GenServer.cast/2`, `send/2`, monitors and links, and it can be registered in
  `HordeC.Registry`.

  A C worker cannot be started on a BEAM node: `start_link/1` raises.
  """

  @keys [:type, :arg, :id, :restart, :shutdown]

  @doc "The child specification of a C worker (see the module doc for the options)."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) when is_list(opts) do
    case Keyword.keys(opts) -- @keys do
      [] -> :ok
      unknown -> raise ArgumentError, "unknown options for HordeC.CWorker: #{inspect(unknown)}"
    end

    type = Keyword.get(opts, :type)

    unless is_binary(type) and type != "" do
      raise ArgumentError,
            "expected :type to be a non-empty binary naming a C worker type, got: #{inspect(type)}"
    end

    spec = %{
      id: Keyword.get(opts, :id, __MODULE__),
      start: {__MODULE__, :start_link, [[type: type, arg: Keyword.get(opts, :arg)]]}
    }

    opts
    |> Keyword.take([:restart, :shutdown])
    |> Enum.into(spec)
  end

  @doc """
  Not callable: C workers run only inside hordec nodes, started by `HordeC.DynamicSupervisor`.
  Raises `ArgumentError`.
  """
  @spec start_link(keyword()) :: no_return()
  def start_link(opts) do
    raise ArgumentError,
          "HordeC.CWorker #{inspect(Keyword.get(opts, :type))} cannot be started on a BEAM " <>
            "node: C workers run inside hordec nodes; start one with " <>
            "HordeC.DynamicSupervisor.start_child(sup, {HordeC.CWorker, type: ..., arg: ...})"
  end

  @doc false
  # {type, arg} when `spec` (normalized) is a C worker's, else nil.
  @spec body(map()) :: {binary(), term()} | nil
  def body(%{start: {__MODULE__, :start_link, [opts]}}) when is_list(opts) do
    case Keyword.get(opts, :type) do
      type when is_binary(type) -> {type, Keyword.get(opts, :arg)}
      _ -> nil
    end
  end

  def body(_spec), do: nil
end
