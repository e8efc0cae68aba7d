{# bioconv: derived from Brian2's cpp_standalone/templates/threshold.cpp (UPSTREAM.toml). Changed: with
   the preference devices.bioconv_standalone.block_thresholds, a condition that only reads values (no
   function call) is computed on blocks of neurons without a branch (vectorized), and only a block with
   a spike is scanned for its spikes by Brian2's loop (the condition is evaluated again there, which
   only reads values). Same spikes, same order. #}
{# USES_VARIABLES { N } #}
{% extends 'common_group.cpp' %}
{% block maincode %}
       {# not_refractory and lastspike are added as needed_variables in the
       Thresholder class, we cannot use the USES_VARIABLE mechanism
       conditionally
       Same goes for "eventspace" (e.g. spikespace) which depends on the type of
       event #}

    //// MAIN CODE ////////////
    // scalar code
    const int _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    {#  Get the name of the array that stores these events (e.g. the spikespace array) #}
    {% set _eventspace = get_array_name(eventspace_variable) %}

    long _count = 0;
    {#  Brian2's loop over [begin, end): the condition, then the spike #}
    {% macro scan(begin, end) %}
    for(size_t _idx={{begin}}; _idx<{{end}}; _idx++)
    {
        const size_t _vectorisation_idx = _idx;
        {{vector_code|autoindent}}
        if(_cond) {
            {{_eventspace}}[_count++] = _idx;
            {% if _uses_refractory %}
            {{not_refractory}}[_idx] = false;
            {{lastspike}}[_idx] = {{t}};
            {% endif %}
        }
    }
    {% endmacro %}
    {% set _block = bioconv_threshold_block(vector_code, owner) %}
    {% if _block %}
    // bioconv: blocked threshold test (block_thresholds)
    for(size_t _block=0; _block<N; _block+={{_block}})
    {
        if(_block+{{_block}} <= N)
        {
            // does the block hold a spike? An OR-reduction without a branch (vectorized). Storing
            // the conditions here for the scan below measured slower (ConvNet loop 7.8 s -> 13.1 s).
            long _any = 0;
            #pragma omp simd reduction(|:_any)
            for(size_t _idx=_block; _idx<_block+{{_block}}; _idx++)
            {
                const size_t _vectorisation_idx = _idx;
                {{vector_code|autoindent}}
                _any |= _cond;
            }
            if(!_any) continue;
        }
        // a block with a spike, or the last, partial block: Brian2's loop (the condition only reads
        // values, so evaluating it again is safe)
        const size_t _block_end = _block+{{_block}} < N ? _block+{{_block}} : N;
        {{ scan('_block', '_block_end') }}
    }
    {% else %}
    {{ scan('0', 'N') }}
    {% endif %}
    {{_eventspace}}[N] = _count;
{% endblock %}

{% block after_code %}
{% set _eventspace = get_array_name(eventspace_variable) %}
{{_eventspace}}[N] = 0;  // Note that this is not an off-by-1-error: the array has N+1 elements
{% endblock %}
