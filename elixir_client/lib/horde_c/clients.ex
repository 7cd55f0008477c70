defmodule HordeC.Clients do
  @moduledoc false
  # Per-name client state (e.g. which replica a `HordeC.Crdt` name is attached to), read on every
  # API call. It lives in one named public ETS table rather than in :persistent_term, whose updates
  # cost a global GC: names come and go (tests, restarts, dynamic maps).
  #
  # Rows are `{{kind, name}, owner_pid, value}`. The owner is the client process that wrote the row;
  # this process owns the table (so it survives any client's death) and monitors every owner, so a
  # client killed without running terminate/2 leaves no stale row behind. A row is only ever removed
  # together with its owner pid, so a restarted client's fresh row is never removed by the old
  # client's late DOWN.

  use GenServer

  @table :horde_c_clients

  @doc false
  def start_link(_), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc "Writes `value` for `{kind, name}`, owned by the calling process. `:ok` or `{:error, :not_started}`."
  @spec put(module(), atom(), term()) :: :ok | {:error, :not_started}
  def put(kind, name, value) do
    case Process.whereis(__MODULE__) do
      nil ->
        {:error, :not_started}

      server ->
        :ets.insert(@table, {{kind, name}, self(), value})
        GenServer.cast(server, {:watch, self()})
    end
  end

  @doc "The value of `{kind, name}`, or `:error` (also when the application is not started)."
  @spec fetch(module(), atom()) :: {:ok, term()} | :error
  def fetch(kind, name) do
    case :ets.lookup(@table, {kind, name}) do
      [{_, _owner, value}] -> {:ok, value}
      [] -> :error
    end
  rescue
    ArgumentError -> :error
  end

  @doc "Removes `{kind, name}` if the calling process owns it."
  @spec delete(module(), atom()) :: :ok
  def delete(kind, name) do
    :ets.match_delete(@table, {{kind, name}, self(), :_})
    :ok
  rescue
    ArgumentError -> :ok
  end

  @impl true
  def init([]) do
    :ets.new(@table, [:set, :public, :named_table, read_concurrency: true])
    {:ok, %{}}
  end

  @impl true
  def handle_cast({:watch, pid}, watched) do
    if Map.has_key?(watched, pid),
      do: {:noreply, watched},
      else: {:noreply, Map.put(watched, pid, Process.monitor(pid))}
  end

  @impl true
  def handle_info({:DOWN, _ref, :process, pid, _reason}, watched) do
    :ets.match_delete(@table, {:_, pid, :_})
    {:noreply, Map.delete(watched, pid)}
  end
end
