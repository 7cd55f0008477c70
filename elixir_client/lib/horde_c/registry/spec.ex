defmodule HordeC.Registry.Spec do
  @moduledoc false
  # Match specifications over the registry's rows, which are stored as {key, pid, value} so that
  # Elixir Registry's select/2 specs ({{key, pid, value}, guards, body}) apply to them unchanged.

  @doc "Raises ArgumentError unless `spec` is a list of `{{key, pid, value}, guards, body}` clauses."
  @spec validate!(term(), String.t()) :: :ok
  def validate!(spec, fun) do
    valid? =
      is_list(spec) and
        Enum.all?(spec, fn
          {{_key, _pid, _value}, guards, body} when is_list(guards) and is_list(body) -> true
          _ -> false
        end)

    unless valid? do
      raise ArgumentError,
            "invalid match specification in HordeC.Registry.#{fun}: #{inspect(spec)}"
    end

    :ok
  end

  @doc """
  Runs `spec` over `rows` (a list of stored objects). Raises ArgumentError on a spec ETS rejects.
  """
  @spec run([tuple()], list(), String.t()) :: list()
  def run([], _spec, _fun), do: []

  def run(rows, spec, fun) do
    :ets.match_spec_run(rows, compile(spec, fun))
  end

  @doc "Compiles a match specification, raising ArgumentError naming the function if ETS rejects it."
  @spec compile(list(), String.t()) :: :ets.compiled_match_spec()
  def compile(spec, fun) do
    :ets.match_spec_compile(spec)
  rescue
    ArgumentError ->
      reraise ArgumentError,
              "invalid match specification in HordeC.Registry.#{fun}: #{inspect(spec)}",
              __STACKTRACE__
  end

  @doc """
  True when `term` contains no atom that means something in a match pattern (`:_`, `:"$1"`...),
  so that it can be put in a match head and match only itself.
  """
  @spec literal?(term()) :: boolean()
  def literal?(term) when is_binary(term) or is_number(term) or is_pid(term), do: true
  def literal?(:_), do: false

  def literal?(term) when is_atom(term) do
    not String.starts_with?(Atom.to_string(term), "$")
  end

  def literal?(term) when is_tuple(term), do: term |> Tuple.to_list() |> literal?()
  def literal?([h | t]), do: literal?(h) and literal?(t)
  def literal?([]), do: true

  def literal?(term) when is_map(term),
    do: Enum.all?(term, fn {k, v} -> literal?(k) and literal?(v) end)

  def literal?(_reference_port_fun), do: true
end
